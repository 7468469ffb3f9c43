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

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Fields>>>);

impl Capture {
    /// Runs `f` with this capture as the thread's subscriber.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::subscriber::with_default(self.clone(), f)
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

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        fields.insert("level".into(), event.metadata().level().to_string());
        self.0.lock().unwrap().push(fields);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
