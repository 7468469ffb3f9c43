//! Replay tests (written below).
