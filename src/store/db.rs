//! One connection to the store's database: embedded SQLite, or PostgreSQL.
//!
//! The store's SQL is written once, in the subset both engines run (`?N` placeholders,
//! `ON CONFLICT`, `RETURNING`, `CAST(… AS BIGINT)`); the few statements that differ ask
//! [`Conn::dialect`]. This layer binds parameters, reads rows into plain [`Value`]s and maps
//! errors, so the store's code does not name either driver.
//!
//! PostgreSQL specifics kept here: `?N` is rewritten to `$N`; parameters are sent with their
//! type (BIGINT, DOUBLE PRECISION, TEXT, BYTEA; a NULL's type is inferred by the server);
//! BOOL, INT and NUMERIC results read back as integers (or reals when they have a fraction).
use std::cell::{Cell, RefCell};
use std::time::Duration;

use postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

/// Which engine a connection talks to, for the few statements written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value in a row or a parameter, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    /// The connection closed inside a transaction: its statements are lost.
    #[error("postgres: the connection closed inside a transaction")]
    Closed,
    /// TLS to the server cannot be set up as the URL asks (`sslrootcert` unreadable, …).
    #[error("postgres: {0}")]
    Tls(String),
    /// A stored value does not convert to what the code reads (a row written by an older
    /// version or by hand): listings skip such rows.
    #[error("column {column}: {message}")]
    Conversion { column: usize, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A value that does not convert (see [`Error::Conversion`]).
    pub fn conversion(column: usize, message: impl Into<String>) -> Error {
        Error::Conversion {
            column,
            message: message.into(),
        }
    }

    /// A UNIQUE constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            Error::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// Any constraint (UNIQUE, CHECK, FOREIGN KEY, NOT NULL) refused the write.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::ConstraintViolation
            }
            Error::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }
}

/// The server's message (with its SQLSTATE) rather than the client's bare "db error".
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // The cause too: "error performing TLS handshake" alone does not say which check failed.
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// `.optional()` on a query that may find no row, as in rusqlite.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What can be bound as a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! integer_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integer_to_value!(i64, i32, i16, i8, u32, u16, u8, bool);

macro_rules! wide_integer_to_value {
    ($($t:ty),*) => {$(
        /// Values past `i64::MAX` are stored as `i64::MAX` (nothing the store keeps comes near).
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
wide_integer_to_value!(u64, usize);

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

/// The parameters of a statement: `()`, `[a]`, `[a, b]` of one type, or `params![a, b, …]`.
pub trait Params {
    fn values(self) -> Vec<Value>;
}

impl Params for () {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl<const N: usize> Params for &[&dyn ToValue; N] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl Params for [&dyn ToValue; 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

impl Params for Vec<Value> {
    fn values(self) -> Vec<Value> {
        self
    }
}

/// `params![a, b]`: parameters of different types.
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::db::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::ToValue),+] as &[&dyn $crate::store::db::ToValue] };
}
pub(crate) use params;

/// What a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

macro_rules! integer_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                match value {
                    Value::Integer(i) => <$t>::try_from(*i)
                        .map_err(|_| format!("{i} is out of range for {}", stringify!($t))),
                    other => Err(format!("expected an integer, found {}", type_name(other))),
                }
            }
        }
    )*};
}
integer_from_value!(i64, i32, i16, u64, u32, u16, u8, usize);

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        i64::from_value(value).map(|i| i != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {}", type_name(other))),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", type_name(other))),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(format!("expected a blob, found {}", type_name(other))),
        }
    }
}

/// A column by its position (from 0), as `row.get(0)`.
pub trait RowIndex {
    fn index(&self) -> usize;
}

impl RowIndex for usize {
    fn index(&self) -> usize {
        *self
    }
}

/// One result row.
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub fn get<I: RowIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let i = idx.index();
        let value = self
            .values
            .get(i)
            .ok_or_else(|| Error::conversion(i, "no such column"))?;
        T::from_value(value).map_err(|m| Error::conversion(i, m))
    }
}

/// How a SQLite transaction takes its lock (PostgreSQL serialises writers itself, see
/// [`Conn::begin_exclusive`]).
#[derive(Debug, Clone, Copy)]
pub enum TransactionBehavior {
    Deferred,
    Immediate,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

/// A PostgreSQL connection that connects again when the server closed it.
struct Pg {
    /// `Option` so that a client can be handed to a plain thread to drop: it owns a Tokio
    /// runtime, which may not be dropped on one of the server's runtime threads.
    client: RefCell<Option<postgres::Client>>,
    url: String,
    /// TLS, when the URL asks for it (see [`pg_tls`]).
    tls: Option<postgres_native_tls::MakeTlsConnector>,
    /// Session settings, applied on every connection.
    setup: String,
}

impl Pg {
    fn connect(&self) -> Result<postgres::Client> {
        let mut client = match &self.tls {
            Some(tls) => postgres::Client::connect(&self.url, tls.clone())?,
            None => postgres::Client::connect(&self.url, postgres::NoTls)?,
        };
        client.batch_execute(&self.setup)?;
        Ok(client)
    }

    /// The client; connected again first when the last one was closed (the server restarted,
    /// the network broke: the statement that found out failed, the next one gets a new
    /// connection), unless a transaction was open on it (its statements are lost: an error).
    fn client(&self, in_transaction: bool) -> Result<std::cell::RefMut<'_, postgres::Client>> {
        let mut slot = self.client.borrow_mut();
        if slot.as_ref().is_none_or(postgres::Client::is_closed) {
            if in_transaction {
                return Err(Error::Closed);
            }
            if let Some(old) = slot.take() {
                drop_apart(old);
            }
            *slot = Some(self.connect()?);
        }
        Ok(std::cell::RefMut::map(slot, |c| {
            c.as_mut().expect("connected above")
        }))
    }
}

/// TLS to PostgreSQL as a URL asks, with libpq's names: `sslmode=require` connects over TLS only,
/// the server's certificate checked (name and chain) against the system's roots and, when
/// `sslrootcert=FILE` names one, that PEM certificate (a private CA, or the server's own
/// self-signed one). Stricter than libpq, whose `require` checks nothing: a connection that
/// carries the store's secrets is not sent to whoever answers. Any other mode connects without
/// TLS, as before. Returns the URL without `sslrootcert`, which the client library does not
/// know.
pub fn pg_tls(url: &str) -> Result<(String, Option<postgres_native_tls::MakeTlsConnector>)> {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return Ok((url.to_string(), None));
    };
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let find = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let root = find("sslrootcert");
    let url = match root {
        None => url.to_string(),
        Some(_) => {
            let kept: Vec<&(String, String)> =
                pairs.iter().filter(|(k, _)| k != "sslrootcert").collect();
            parsed.set_query(None);
            if !kept.is_empty() {
                parsed.query_pairs_mut().extend_pairs(kept);
            }
            parsed.to_string()
        }
    };
    if find("sslmode").as_deref() != Some("require") {
        return Ok((url, None));
    }
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = root {
        let pem =
            std::fs::read(&path).map_err(|e| Error::Tls(format!("sslrootcert {path}: {e}")))?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| Error::Tls(format!("sslrootcert {path}: {e}")))?;
        builder.add_root_certificate(cert);
    }
    let connector = builder
        .build()
        .map_err(|e| Error::Tls(format!("TLS: {e}")))?;
    Ok((
        url,
        Some(postgres_native_tls::MakeTlsConnector::new(connector)),
    ))
}

/// Drops a PostgreSQL client on a plain thread (see [`Pg::client`]).
fn drop_apart(client: postgres::Client) {
    std::thread::spawn(move || drop(client));
}

/// One connection, used by one thread at a time (the store keeps each behind a mutex).
pub struct Conn {
    backend: Backend,
    /// Open transactions: 0 outside, 1 in a transaction, more in savepoints.
    depth: Cell<u32>,
}

/// A PostgreSQL advisory lock that every write takes: writers run one at a time across all
/// nodes, as they do on SQLite, so the store's read-then-write rules hold unchanged.
const WRITE_LOCK: i64 = 0x6c66_7772_6974_6531; // "lfwrite1"

impl Conn {
    pub fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn {
            backend: Backend::Sqlite(conn),
            depth: Cell::new(0),
        }
    }

    /// Connects to `url` (`postgres://user:password@host:port/database`).
    pub fn postgres(url: &str, read_only: bool, lock_timeout: Duration) -> Result<Conn> {
        let (url, tls) = pg_tls(url)?;
        let pg = Pg {
            client: RefCell::new(None),
            url,
            tls,
            setup: format!(
                "SET lock_timeout = {}; SET default_transaction_read_only = {}",
                lock_timeout.as_millis(),
                if read_only { "on" } else { "off" }
            ),
        };
        *pg.client.borrow_mut() = Some(pg.connect()?);
        Ok(Conn {
            backend: Backend::Postgres(Box::new(pg)),
            depth: Cell::new(0),
        })
    }

    fn in_transaction(&self) -> bool {
        self.depth.get() > 0
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, checkpoints).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.backend {
            Backend::Sqlite(c) => Some(c),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let values = params.values();
        match &self.backend {
            Backend::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                bind_sqlite(&mut stmt, &values)?;
                Ok(stmt.raw_execute()?)
            }
            Backend::Postgres(pg) => {
                let sql = postgres_sql(sql);
                let mut client = pg.client(self.in_transaction())?;
                let mut rows = client.query_typed_raw(&sql, postgres_params(&values))?;
                use postgres::fallible_iterator::FallibleIterator;
                while rows.next()?.is_some() {}
                Ok(rows.rows_affected().unwrap_or(0) as usize)
            }
        }
    }

    /// Runs statements separated by `;`, with no parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Backend::Postgres(pg) => {
                let mut client = pg.client(self.in_transaction())?;
                Ok(client.batch_execute(sql)?)
            }
        }
    }

    /// Every row of a query, read into values.
    fn rows(&self, sql: &str, values: &[Value]) -> Result<Vec<Row>> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                bind_sqlite(&mut stmt, values)?;
                let columns = stmt.column_count();
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let values = (0..columns)
                        .map(|i| row.get_ref(i).map(sqlite_value))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.push(Row { values });
                }
                Ok(out)
            }
            Backend::Postgres(pg) => {
                let sql = postgres_sql(sql);
                let mut client = pg.client(self.in_transaction())?;
                let rows = client.query_typed(&sql, &postgres_params_ref(values))?;
                rows.iter()
                    .map(|row| {
                        let values = (0..row.len())
                            .map(|i| row.try_get::<_, Value>(i))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Row { values })
                    })
                    .collect()
            }
        }
    }

    /// The first row of a query, given to `f`; [`Error::NoRows`] when there is none.
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row) -> Result<T>,
    {
        let rows = self.rows(sql, &params.values())?;
        rows.first().map_or(Err(Error::NoRows), f)
    }

    /// A statement to run with [`Statement::query_map`].
    pub fn prepare<'c>(&'c self, sql: &str) -> Result<Statement<'c>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// The same as [`Conn::prepare`]: SQLite statements are always cached here.
    pub fn prepare_cached<'c>(&'c self, sql: &str) -> Result<Statement<'c>> {
        self.prepare(sql)
    }

    /// How long a statement waits for a lock held by another writer before it fails.
    pub fn busy_timeout(&self, timeout: Duration) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(c) => Ok(c.busy_timeout(timeout)?),
            Backend::Postgres(_) => {
                self.execute_batch(&format!("SET lock_timeout = {}", timeout.as_millis()))
            }
        }
    }

    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }

    /// A transaction, or a savepoint inside the one already open. Rolled back when dropped
    /// without [`Transaction::commit`].
    pub fn transaction_with_behavior(
        &mut self,
        behavior: TransactionBehavior,
    ) -> Result<Transaction<'_>> {
        let depth = self.depth.get();
        let begin = match (depth, behavior, self.dialect()) {
            (0, TransactionBehavior::Immediate, Dialect::Sqlite) => "BEGIN IMMEDIATE".to_owned(),
            (0, _, _) => "BEGIN".to_owned(),
            (d, _, _) => format!("SAVEPOINT sp{d}"),
        };
        self.execute_batch(&begin)?;
        self.depth.set(depth + 1);
        Ok(Transaction {
            conn: self,
            done: false,
        })
    }

    /// A transaction holding the write lock of every node (see [`WRITE_LOCK`]), which the store
    /// wraps around every write on PostgreSQL (on SQLite its one writer connection already
    /// serialises writes).
    pub fn begin_exclusive(&mut self) -> Result<Transaction<'_>> {
        let tx = self.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.dialect() == Dialect::Postgres {
            tx.query_row("SELECT pg_advisory_xact_lock(?1)", [WRITE_LOCK], |_| Ok(()))?;
        }
        Ok(tx)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Backend::Postgres(pg) = &self.backend
            && let Some(client) = pg.client.borrow_mut().take()
        {
            drop_apart(client);
        }
    }
}

/// A statement prepared by [`Conn::prepare`].
pub struct Statement<'c> {
    conn: &'c Conn,
    sql: String,
}

impl Statement<'_> {
    /// Every row, each mapped by `f`.
    pub fn query_map<T, P, F>(&mut self, params: P, f: F) -> Result<std::vec::IntoIter<Result<T>>>
    where
        P: Params,
        F: FnMut(&Row) -> Result<T>,
    {
        let rows = self.conn.rows(&self.sql, &params.values())?;
        Ok(rows.iter().map(f).collect::<Vec<_>>().into_iter())
    }

    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.conn.execute(&self.sql, params)
    }
}

/// An open transaction (or savepoint); derefs to its connection.
pub struct Transaction<'c> {
    conn: &'c mut Conn,
    done: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.finish(true)
    }

    pub fn rollback(mut self) -> Result<()> {
        self.finish(false)
    }

    fn finish(&mut self, commit: bool) -> Result<()> {
        self.done = true;
        let depth = self.conn.depth.get() - 1;
        let sql = match (depth, commit) {
            (0, true) => "COMMIT".to_owned(),
            (0, false) => "ROLLBACK".to_owned(),
            (d, true) => format!("RELEASE SAVEPOINT sp{d}"),
            (d, false) => format!("ROLLBACK TO SAVEPOINT sp{d}; RELEASE SAVEPOINT sp{d}"),
        };
        // Still inside: a connection that closed meanwhile fails the COMMIT rather than
        // reconnecting for it (which would report a lost transaction as committed).
        let done = self.conn.execute_batch(&sql);
        self.conn.depth.set(depth);
        done
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.finish(false)
        {
            tracing::warn!(error = %e, "rolling back a transaction failed");
        }
    }
}

fn bind_sqlite(stmt: &mut rusqlite::CachedStatement<'_>, values: &[Value]) -> Result<()> {
    use rusqlite::types::Value as V;
    for (i, v) in values.iter().enumerate() {
        let v = match v {
            Value::Null => V::Null,
            Value::Integer(i) => V::Integer(*i),
            Value::Real(f) => V::Real(*f),
            Value::Text(s) => V::Text(s.clone()),
            Value::Blob(b) => V::Blob(b.clone()),
        };
        stmt.raw_bind_parameter(i + 1, v)?;
    }
    Ok(())
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// `?N` → `$N` and a bare `?` → the next `$N`, outside quoted text.
fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 1;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    digits = next.to_string();
                }
                next = digits.parse::<usize>().unwrap_or(next) + 1;
                out.push('$');
                out.push_str(&digits);
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// The type a parameter is sent with; a NULL's is left to the server (OID 0).
fn postgres_type(v: &Value) -> Type {
    match v {
        Value::Null => Type::new("unknown".into(), 0, Kind::Pseudo, "pg_catalog".into()),
        Value::Integer(_) => Type::INT8,
        Value::Real(_) => Type::FLOAT8,
        Value::Text(_) => Type::TEXT,
        Value::Blob(_) => Type::BYTEA,
    }
}

fn postgres_params(values: &[Value]) -> Vec<(&Value, Type)> {
    values.iter().map(|v| (v, postgres_type(v))).collect()
}

fn postgres_params_ref(values: &[Value]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    values
        .iter()
        .map(|v| (v as &(dyn ToSql + Sync), postgres_type(v)))
        .collect()
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::BOOL => Value::Integer(i64::from(bool::from_sql(ty, raw)?)),
            Type::INT2 => Value::Integer(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Value::Integer(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => Value::Text(String::from_utf8(raw.get(1..).unwrap_or(&[]).to_vec())?),
            Type::VOID => Value::Null,
            _ => Value::Text(String::from_utf8(raw.to_vec())?),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::BOOL
                | Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::FLOAT4
                | Type::FLOAT8
                | Type::NUMERIC
                | Type::BYTEA
                | Type::JSONB
                | Type::JSON
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::VOID
        )
    }
}

/// A NUMERIC in PostgreSQL's binary form (what `SUM` and `AVG` of integers return): an integer
/// when it has no fraction and fits, else a real.
fn numeric(raw: &[u8]) -> Result<Value, Box<dyn std::error::Error + Sync + Send>> {
    let word = |i: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
        let b = raw.get(i * 2..i * 2 + 2).ok_or("short NUMERIC")?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    };
    let (ndigits, weight, sign, scale) = (word(0)?, word(1)? as i16, word(2)?, word(3)?);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let negative = sign == 0x4000;
    let mut int: Option<i64> = Some(0);
    let mut real = 0f64;
    for i in 0..ndigits {
        let digit = word(4 + i as usize)?;
        let power = i32::from(weight) - i32::from(i as i16);
        real += f64::from(digit) * 10000f64.powi(power);
        int = match (int, u32::try_from(power)) {
            (Some(n), Ok(p)) => 10000i64
                .checked_pow(p)
                .and_then(|m| m.checked_mul(i64::from(digit)))
                .and_then(|d| n.checked_add(d)),
            (_, Err(_)) if digit != 0 => None,
            (n, _) => n,
        };
    }
    Ok(match int {
        Some(n) if scale == 0 || real.fract() == 0.0 => {
            Value::Integer(if negative { -n } else { n })
        }
        _ => Value::Real(if negative { -real } else { real }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ?1 AND c = '?' AND d = ?2 OR e = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2 OR e = $3"
        );
        assert_eq!(postgres_sql("VALUES (?, ?, ?10)"), "VALUES ($1, $2, $10)");
    }

    #[test]
    fn numerics_read_as_integers_or_reals() {
        // 12345678 = [1234, 5678] with weight 1; -0.5 = [5000] with weight -1, scale 1.
        let encode = |digits: &[u16], weight: i16, sign: u16, scale: u16| {
            let mut v = Vec::new();
            for w in [digits.len() as u16, weight as u16, sign, scale]
                .into_iter()
                .chain(digits.iter().copied())
            {
                v.extend_from_slice(&w.to_be_bytes());
            }
            v
        };
        assert_eq!(
            numeric(&encode(&[1234, 5678], 1, 0, 0)).unwrap(),
            Value::Integer(12_345_678)
        );
        assert_eq!(
            numeric(&encode(&[5000], -1, 0x4000, 1)).unwrap(),
            Value::Real(-0.5)
        );
        assert_eq!(numeric(&encode(&[], 0, 0, 0)).unwrap(), Value::Integer(0));
        assert_eq!(
            numeric(&encode(&[7], 2, 0, 0)).unwrap(),
            Value::Integer(700_000_000)
        );
    }

    #[test]
    fn sqlite_rows_and_parameters_round_trip() {
        let conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB)")
            .unwrap();
        let n = conn
            .execute(
                "INSERT INTO t (a, b, c, d) VALUES (?1, ?2, ?3, ?4)",
                params![7u32, "x", 0.5, vec![1u8, 2]],
            )
            .unwrap();
        assert_eq!(n, 1);
        conn.execute("INSERT INTO t (a) VALUES (?1)", [None::<i64>])
            .unwrap();
        let (a, b, c, d): (i64, String, f64, Vec<u8>) = conn
            .query_row("SELECT a, b, c, d FROM t WHERE a = ?1", [7], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!((a, b.as_str(), c, d), (7, "x", 0.5, vec![1, 2]));
        let nulls: Vec<Option<i64>> = conn
            .prepare("SELECT a FROM t ORDER BY a")
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(nulls, vec![None, Some(7)]);
        let none = conn
            .query_row("SELECT a FROM t WHERE a = 99", (), |r| r.get::<_, i64>(0))
            .optional()
            .unwrap();
        assert_eq!(none, None);
        let wrong = conn.query_row("SELECT b FROM t WHERE a = 7", (), |r| r.get::<_, i64>(0));
        assert!(
            matches!(wrong, Err(Error::Conversion { column: 0, .. })),
            "{wrong:?}"
        );
    }

    #[test]
    fn a_dropped_transaction_rolls_back_and_savepoints_nest() {
        let mut conn = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (a INTEGER UNIQUE)")
            .unwrap();
        {
            let mut tx = conn.transaction().unwrap();
            tx.execute("INSERT INTO t (a) VALUES (1)", ()).unwrap();
            {
                let inner = tx.transaction().unwrap();
                inner.execute("INSERT INTO t (a) VALUES (2)", ()).unwrap();
                // dropped: only the savepoint's row goes
            }
            tx.commit().unwrap();
        }
        {
            let tx = conn.transaction().unwrap();
            tx.execute("INSERT INTO t (a) VALUES (3)", ()).unwrap();
        }
        let all: Vec<i64> = conn
            .prepare("SELECT a FROM t ORDER BY a")
            .unwrap()
            .query_map((), |r| r.get(0))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all, vec![1]);
        let dup = conn.execute("INSERT INTO t (a) VALUES (1)", ());
        assert!(dup.unwrap_err().is_unique_violation());
    }
}
