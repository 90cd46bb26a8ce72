//! Spin's SQLite (`fermyon:spin/sqlite@2.0.0`) as `spin up` provides it: one
//! database `default` per app, a file in the state directory
//! (`sqlite_db.db`, Spin's `.spin/sqlite_db.db`), open only to components
//! that list it in `sqlite_databases` (`access-denied` otherwise, as Spin
//! answers), each `execute` one statement with its rows.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::types::{Value as Sql, ValueRef};
use wasmtime::component::Resource;

use crate::ctx::Ctx;
use crate::ctx::fermyon::spin::sqlite::{self as wit, Error, QueryResult, RowResult, Value};

/// The app's `default` database, with a fault switch
/// ([`SqliteDb::set_unavailable`]).
#[derive(Debug)]
pub struct SqliteDb(Mutex<rusqlite::Connection>, AtomicBool);

/// What Spin answers (`error::io`, rusqlite's text) for a database another
/// writer holds; a read-only file or a failing disk read the same way to the
/// app ("attempt to write a readonly database", "disk I/O error").
pub const UNAVAILABLE_MESSAGE: &str = "database is locked";

/// An open connection, as the guest's `connection` resource.
pub struct SqliteConn;

impl SqliteDb {
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(SqliteDb(Mutex::new(conn), AtomicBool::new(false)))
    }

    /// The fault switch for tests of store outages: while on, every
    /// statement fails as Spin reports a locked database.
    pub fn set_unavailable(&self, down: bool) {
        self.1.store(down, Ordering::SeqCst);
    }

    /// One statement, as Spin's in-process SQLite runs it (`prepare_cached`,
    /// then every row), so `RETURNING` answers rows.
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<QueryResult, Error> {
        if self.1.load(Ordering::SeqCst) {
            return Err(Error::Io(UNAVAILABLE_MESSAGE.into()));
        }
        let conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let io = |e: rusqlite::Error| Error::Io(e.to_string());
        let mut stmt = conn.prepare_cached(statement).map_err(io)?;
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let args = params.iter().map(to_sql);
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(io)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(io)? {
            let values = (0..columns.len())
                .map(|i| row.get_ref(i).map(from_sql))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            out.push(RowResult { values });
        }
        Ok(QueryResult { columns, rows: out })
    }
}

fn to_sql(v: &Value) -> Sql {
    match v {
        Value::Integer(i) => Sql::Integer(*i),
        Value::Real(r) => Sql::Real(*r),
        Value::Text(t) => Sql::Text(t.clone()),
        Value::Blob(b) => Sql::Blob(b.clone()),
        Value::Null => Sql::Null,
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Null => Value::Null,
    }
}

impl wit::Host for Ctx {}

impl wit::HostConnection for Ctx {
    fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<SqliteConn>, Error>> {
        if !self.grants.sqlite_databases.contains(&database) {
            return Ok(Err(Error::AccessDenied));
        }
        if database != "default" {
            return Ok(Err(Error::NoSuchDatabase));
        }
        Ok(Ok(self.table.push(SqliteConn)?))
    }

    fn execute(
        &mut self,
        c: Resource<SqliteConn>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        self.table.get(&c)?;
        Ok(self.sqlite.execute(&statement, &parameters))
    }

    fn drop(&mut self, c: Resource<SqliteConn>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
