//! ERP simulator (stub while being written).
use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct SimConfig {
    #[arg(long, default_value_t = 46088)]
    pub port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value = "demo")]
    pub user: String,
    #[arg(long, default_value = "demo")]
    pub password: String,
}

pub async fn serve(_cfg: SimConfig) -> crate::error::Result<()> {
    todo!()
}

pub async fn spawn(_cfg: SimConfig) -> crate::error::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    todo!()
}
