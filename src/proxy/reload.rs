//! The reloader task: reloads on each ask, one at a time (see the
//! parent module's "Reload").

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Reload;
use super::live::{Live, RESTART_ONLY, changed_fields, keeping_restart_only};
use crate::GuardHandle;
use crate::config::{Config, ProxyConfig};

/// Reloads on each ask, one at a time: the file (SIGHUP), or the `[proxy]`
/// table of a config the guard was given otherwise.
pub(super) async fn reloader(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Reload>,
    file: Option<PathBuf>,
    handle: GuardHandle,
    live: Arc<ArcSwap<Live>>,
    (started, authority): (ProxyConfig, http::uri::Authority),
) {
    // The restart-only fields last read, so that a difference (a changed
    // file, or a flag at start) is said once.
    let mut seen = started.clone();
    let mut restart_note = |table: &ProxyConfig, from: &str| {
        let fields: Vec<String> = changed_fields(&seen, table)
            .into_iter()
            .filter(|f| RESTART_ONLY.contains(&f.as_str()))
            .collect();
        if !fields.is_empty() {
            tracing::warn!(target: "enumguard::proxy", from, fields = %fields.join(", "), "these [proxy] settings differ from the running ones (a change, or a flag at start): they take effect when the proxy restarts");
        }
        seen = table.clone();
    };
    while let Some(ask) = rx.recv().await {
        match ask {
            Reload::File => {
                let Some(f) = &file else {
                    tracing::warn!(target: "enumguard::proxy", "reload asked, but the proxy was started without a config file");
                    continue;
                };
                let refused = |e: &dyn std::fmt::Display| {
                    tracing::error!(target: "enumguard::proxy", file = %f.display(), error = %e, "reload refused: the running config stays");
                };
                let mut c = match Config::from_file(f) {
                    Ok(c) => c,
                    Err(e) => {
                        refused(&e);
                        continue;
                    }
                };
                let table = c.proxy.clone().unwrap_or_default();
                restart_note(&table, "file");
                c.proxy = Some(keeping_restart_only(table, &started));
                let old = live.load_full();
                // Built first: a table that cannot be applied refuses the
                // whole file.
                let next = match Live::new(&c, &authority, started.upstream_h2c, Some(&old), 0) {
                    Ok(l) => l,
                    Err(e) => {
                        refused(&e);
                        continue;
                    }
                };
                match handle.reload(c) {
                    Ok(diff) => {
                        let generation = handle.detector().generation();
                        live.store(Arc::new(next.seen_at(generation)));
                        tracing::warn!(target: "enumguard::proxy", file = %f.display(), diff = %diff, "config reloaded");
                    }
                    Err(e) => refused(&e),
                }
            }
            Reload::Follow => {
                let generation = handle.detector().generation();
                let old = live.load_full();
                if old.generation == generation {
                    continue;
                }
                let c = handle.config();
                let table = c.proxy.clone().unwrap_or_default();
                restart_note(&table, "guard reload");
                let mut applied = c.clone();
                applied.proxy = Some(keeping_restart_only(table, &started));
                match Live::new(
                    &applied,
                    &authority,
                    started.upstream_h2c,
                    Some(&old),
                    generation,
                ) {
                    Ok(next) => {
                        let proxy = changed_fields(&old.table, &next.table).join(", ");
                        if !proxy.is_empty() {
                            tracing::warn!(target: "enumguard::proxy", proxy = %proxy, "[proxy] settings of the reloaded config applied");
                        }
                        live.store(Arc::new(next));
                    }
                    Err(e) => {
                        tracing::error!(target: "enumguard::proxy", error = %e, "the [proxy] table of the reloaded config cannot be applied: the running proxy settings stay");
                        live.store(Arc::new(old.seen_at(generation)));
                    }
                }
            }
        }
    }
}
