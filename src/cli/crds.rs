use std::path::PathBuf;

use anyhow::Context;

pub fn run(out_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    match out_dir {
        None => print!("{}", crate::crds::all_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in crate::crds::all() {
                let path = dir.join(crate::crds::file_name(&crd));
                std::fs::write(&path, crate::crds::to_yaml(&crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(0)
}
