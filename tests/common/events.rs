//! Captures the guard's tracing events, fields as text, for tests that
//! check what an operator reads in the logs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One event: its message and fields (`message` included), as text.
pub type Fields = BTreeMap<String, String>;

/// The events of the closures [`Capture::run`] ran. The capture is the
/// test binary's global subscriber, listening to every callsite: each event
/// goes to the capture of the thread that emitted it, if that thread is in
/// `run` (a scoped subscriber would race with other threads over tracing's
/// per-callsite interest cache and miss events now and then).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Fields>>>);

thread_local! {
    static ACTIVE: std::cell::RefCell<Option<Capture>> = const { std::cell::RefCell::new(None) };
}

struct Global;

impl Capture {
    /// Runs `f`, capturing the events this thread emits meanwhile.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Global).expect("no other global subscriber");
        });
        let previous = ACTIVE.with(|a| a.replace(Some(self.clone())));
        let out = f();
        ACTIVE.with(|a| *a.borrow_mut() = previous);
        out
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Fields> {
        self.0.lock().unwrap().clone()
    }

    /// The events whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Fields> {
        self.events()
            .into_iter()
            .filter(|e| e.get("message").is_some_and(|m| m == message))
            .collect()
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Global {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(capture) = ACTIVE.with(|a| a.borrow().clone()) else {
            return;
        };
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        fields.insert("level".into(), event.metadata().level().to_string());
        capture.0.lock().unwrap().push(fields);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
