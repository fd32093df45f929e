use std::net::SocketAddr;

/// What can go wrong while reconciling. Problems with a resource's content are not errors: they
/// become status conditions. These are failures to talk to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {name}: {source}")]
    Kube { action: &'static str, kind: &'static str, name: String, source: kube::Error },
    #[error("serving metrics on {0}: {1}")]
    Serve(SocketAddr, std::io::Error),
}

impl Error {
    pub fn kube(action: &'static str, kind: &'static str, name: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let name = name.into();
        move |source| Self::Kube { action, kind, name, source }
    }
}
