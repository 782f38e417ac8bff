//! Which table and NOTIFY channel a queue uses. Every statement in `store` names the table
//! through this, so one database can hold queues under other names, and nothing else in the
//! code spells `job` or `job_available`.

use std::sync::Arc;

/// A table name or channel that is not a plain lower-case SQL identifier.
#[derive(Debug, thiserror::Error)]
#[error("{what} {value:?} must be a lower-case SQL identifier: a-z or _ first, then a-z, 0-9 or _, at most 63 bytes")]
pub struct InvalidName {
    what: &'static str,
    value: String,
}

/// The job table and the channel its enqueues notify. Cheap to clone.
///
/// The migrations in `migrations/` create the default, `job` notified on `job_available`. A
/// table under another name needs the same DDL under that name (indexes and constraints are
/// named after the table: `<table>_unique_active_key`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTable(Arc<Names>);

#[derive(Debug, PartialEq, Eq)]
struct Names {
    table: String,
    channel: String,
    unique_key_index: String,
}

impl JobTable {
    pub const DEFAULT_TABLE: &'static str = "job";
    pub const DEFAULT_CHANNEL: &'static str = "job_available";

    pub fn new(table: &str, channel: &str) -> Result<Self, InvalidName> {
        let check = |what, value: &str| {
            let mut bytes = value.bytes();
            let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
            let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if first_ok && rest_ok && value.len() <= 63 {
                Ok(value.to_owned())
            } else {
                Err(InvalidName { what, value: value.to_owned() })
            }
        };
        let table = check("the job table", table)?;
        let channel = check("the NOTIFY channel", channel)?;
        let unique_key_index = format!("{table}_unique_active_key");
        Ok(Self(Arc::new(Names { table, channel, unique_key_index })))
    }

    pub fn table(&self) -> &str {
        &self.0.table
    }

    pub fn channel(&self) -> &str {
        &self.0.channel
    }

    /// The partial unique index that allows one active job per (kind, unique_key).
    pub(crate) fn unique_key_index(&self) -> &str {
        &self.0.unique_key_index
    }

    /// A statement template with `{job}` replaced by the table's name. The name was checked to be
    /// a plain identifier, so it cannot change the statement's meaning.
    pub(crate) fn sql(&self, template: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(template.replace("{job}", &self.0.table))
    }
}

impl Default for JobTable {
    fn default() -> Self {
        Self::new(Self::DEFAULT_TABLE, Self::DEFAULT_CHANNEL).expect("the default names are identifiers")
    }
}

#[cfg(test)]
mod tests {
    use super::JobTable;

    #[test]
    fn names_must_be_plain_identifiers() {
        for ok in ["job", "tenant_jobs", "_q2"] {
            assert!(JobTable::new(ok, "ch").is_ok(), "{ok}");
        }
        for bad in ["", "Job", "2jobs", "job; DROP TABLE other", "public.job", "j\"ob", &"x".repeat(64)] {
            assert!(JobTable::new(bad, "ch").is_err(), "{bad:?}");
            assert!(JobTable::new("job", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statements_name_the_configured_table() {
        let t = JobTable::new("other_jobs", "other_channel").unwrap();
        assert_eq!(
            t.sql("UPDATE {job} SET x = 1 WHERE {job}.id = $1").0,
            "UPDATE other_jobs SET x = 1 WHERE other_jobs.id = $1"
        );
        assert_eq!(t.unique_key_index(), "other_jobs_unique_active_key");
    }
}
