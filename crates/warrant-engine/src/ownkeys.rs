//! Warrant's own long-lived keys besides the SSH CA — the managed SSH key for hosts, the key
//! that signs recordings — each made at first use, sealed by the vault with its name as
//! associated data, created once (the first writer wins) and audited.

use warrant_audit::Event;
use warrant_core::Secret;

use crate::Engine;
use crate::error::Result;

/// A freshly made key: its private form (to seal) and its public form (stored in clear).
pub(crate) struct NewKey {
    pub(crate) private: Secret<String>,
    pub(crate) public: String,
}

impl Engine {
    /// The private form of Warrant's key `name`, made with `make` (and audited with `event`)
    /// if it does not exist yet.
    pub(crate) async fn own_key(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<NewKey>,
        event: impl FnOnce(&str) -> Event,
    ) -> Result<Secret<String>> {
        let stored = {
            let mut r = self.store().read().await?;
            r.q().sealed_key(name).await?
        };
        if let Some((sealed, _)) = stored {
            return self.open_text(name, &sealed);
        }
        let key = make()?;
        let sealed = self.seal_text(name, &key.private)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        // Another caller may have made one meanwhile: the first one stays.
        if let Some((existing, _)) = tx.q().sealed_key(name).await? {
            tx.rollback().await?;
            return self.open_text(name, &existing);
        }
        tx.w()
            .await?
            .insert_sealed_key(name, &sealed, &key.public, now)
            .await?;
        tx.audit(now, None, &event(&key.public)).await?;
        tx.commit().await?;
        Ok(key.private)
    }
}
