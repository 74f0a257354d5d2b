//! The ERP session shared by every sidecar of one database (`erp_sync.erp_session`, readable only
//! by `erp_sync_worker`): the [`SessionStore`] behind [`crate::erp::ErpClient::share_session`].
//! One login at a time across the fleet: logins run under a transaction-scoped advisory lock per
//! account and re-read the table first, so a sidecar that waited takes the session the one
//! before it stored instead of logging in again (and, on a server with one session per user,
//! logging the others out).

use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{pool_err, q};
use crate::erp::session::{Secret, SessionStore, StoredSession};
use crate::error::Result;

/// [`SessionStore`] on the extension's `erp_sync.erp_session` table.
pub struct PgSessionStore {
    pool: Pool,
}

impl PgSessionStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn stored(row: &tokio_postgres::Row) -> Result<StoredSession> {
    let token: String = row.try_get(0)?;
    let age: i64 = row.try_get(2)?;
    Ok(StoredSession {
        token: Secret::new(token),
        generation: row.try_get(1)?,
        age_ms: u64::try_from(age).unwrap_or(0),
    })
}

impl SessionStore for PgSessionStore {
    fn load<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Option<StoredSession>>> {
        async move {
            let c = self.pool.get().await.map_err(pool_err)?;
            let st = c.prepare_cached(q::ERP_SESSION_GET).await?;
            match c.query_opt(&st, &[&account]).await? {
                Some(r) => stored(&r).map(Some),
                None => Ok(None),
            }
        }
        .boxed()
    }

    fn login_locked<'a>(
        &'a self,
        account: &'a str,
        stale: Option<i64>,
        max_age_ms: u64,
        login: BoxFuture<'a, Result<Secret>>,
    ) -> BoxFuture<'a, Result<StoredSession>> {
        async move {
            let mut c = self.pool.get().await.map_err(pool_err)?;
            // Dropped without commit (login failed, task cancelled): tokio-postgres rolls back,
            // which releases the lock.
            let tx = c.transaction().await?;
            tx.execute(q::ERP_SESSION_LOCK, &[&account]).await?;
            if let Some(r) = tx.query_opt(q::ERP_SESSION_GET, &[&account]).await? {
                let s = stored(&r)?;
                if Some(s.generation) != stale && s.age_ms < max_age_ms {
                    tx.commit().await?;
                    return Ok(s);
                }
            }
            let token = login.await?;
            let generation: i64 = tx
                .query_one(q::ERP_SESSION_PUT, &[&account, &token.expose()])
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(StoredSession {
                token,
                generation,
                age_ms: 0,
            })
        }
        .boxed()
    }
}
