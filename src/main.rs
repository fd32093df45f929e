use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Two TLS providers end up in the binary (kube's and the HTTP clients'); without a process
    // default, rustls cannot choose and kube::Client panics.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("could not install the aws-lc-rs TLS provider"))?;
    let cli = outflow::cli::Cli::parse();
    outflow::cli::init_tracing(cli.log_format);
    let code = outflow::cli::run(cli).await?;
    std::process::exit(code);
}
