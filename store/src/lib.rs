//! The ledger on disk and in PostgreSQL.
//!
//! - [`journal`]: the local, append-only, fsync'ed journal every entry goes through first
//!   (segments, group commit, recovery, scans, keys).
//! - [`pg`]: the ledger in PostgreSQL (schema, replication, reads, retention).

pub mod journal;
pub mod pg;

/// An error and its causes, `: `-separated, for a person to read (the binaries' last word,
/// logs). A cause whose text the message already holds is left out: some errors repeat
/// their cause in their own text, and it would otherwise be read twice.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// An error that says `text`, caused by `cause`, and whose text may repeat its cause's.
    #[derive(Debug)]
    struct Layer {
        text: String,
        cause: Option<Box<Layer>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.text)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.cause.as_deref().map(|c| c as _)
        }
    }

    fn layer(text: &str, cause: Option<Layer>) -> Layer {
        Layer {
            text: text.into(),
            cause: cause.map(Box::new),
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = || layer("No such file or directory (os error 2)", None);
        // A message that names its cause, over one that does not.
        let repeating = layer(
            "cannot read config c.toml: No such file or directory (os error 2)",
            Some(io()),
        );
        assert_eq!(
            error_chain(&repeating),
            "cannot read config c.toml: No such file or directory (os error 2)"
        );
        let plain = layer("journal j", Some(layer("cannot list j", Some(io()))));
        assert_eq!(
            error_chain(&plain),
            "journal j: cannot list j: No such file or directory (os error 2)"
        );
        let middle = layer(
            "journal j: cannot list j",
            Some(layer("cannot list j", Some(io()))),
        );
        assert_eq!(
            error_chain(&middle),
            "journal j: cannot list j: No such file or directory (os error 2)"
        );
    }
}
