use std::path::PathBuf;

/// Why a devnet could not be started, set up, recorded or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// No anvil binary, and none could be installed.
    #[error("anvil is not available: {0}")]
    AnvilUnavailable(String),
    /// An anvil process did not come up.
    #[error("anvil for chain {chain_id} did not start: {message}")]
    AnvilStart { chain_id: u64, message: String },
    /// A JSON-RPC call or transaction while setting up or driving a chain failed.
    #[error("chain {chain_id}: {message}")]
    Chain { chain_id: u64, message: String },
    /// The devnet folder's state is not what was expected.
    #[error("devnet in {}: {message}", dir.display())]
    State { dir: PathBuf, message: String },
    #[error("invalid devnet options: {0}")]
    Options(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl DevnetError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevnetError {
        let context = context.into();
        move |source| DevnetError::Io { context, source }
    }
}
