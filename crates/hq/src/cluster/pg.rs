//! A few async PostgreSQL connections for the cluster's own work (output reads, leases, sign-in
//! attempts), dialled on demand and dropped when they fail.

use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

/// Connections kept idle at most.
const IDLE: usize = 4;
/// How long PostgreSQL lets one of these connections sit in a transaction without a word: a
/// replica cut off mid-transaction (a partition) holds its locks, the share lock on a stream's
/// lease among them, only this long, so another replica can take the stream over. Our own
/// transactions send their statements back to back.
const IDLE_IN_TRANSACTION: &str = "5s";

/// A small pool of async connections to one database.
pub struct Pg {
    config: tokio_postgres::Config,
    idle: std::sync::Mutex<Vec<Client>>,
}

/// A connection borrowed from [`Pg`]; it goes back when dropped, unless it failed.
pub struct Conn<'a> {
    pool: &'a Pg,
    client: Option<Client>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        // Present until drop.
        self.client.as_ref().unwrap_or_else(|| unreachable!("a connection is held until it is dropped"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            let mut idle = crate::lock(&self.pool.idle);
            if idle.len() < IDLE {
                idle.push(client);
            }
        }
    }
}

impl Pg {
    /// A pool for `url`; nothing is dialled yet.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().context("--database-url is not a PostgreSQL URL")?;
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("agentrelay-hq");
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        Ok(Self { config, idle: Default::default() })
    }

    /// A connection: an idle one, or a new one.
    pub async fn get(&self) -> anyhow::Result<Conn<'_>> {
        let idle = crate::lock(&self.idle).pop();
        let client = match idle {
            Some(client) if !client.is_closed() => client,
            _ => self.connect().await?,
        };
        Ok(Conn { pool: self, client: Some(client) })
    }

    /// A connection of its own (the output writer keeps one).
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (client, connection) =
            self.config.connect(NoTls).await.context("cannot connect to PostgreSQL")?;
        // The connection task ends when the client is dropped or the server goes away.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}
