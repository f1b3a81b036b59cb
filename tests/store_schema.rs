//! The PostgreSQL migrations (`src/store/migrations/postgres/`) build the schema the SQLite ones
//! build: the same tables, columns (compatible types, NOT NULL, defaults), foreign keys, CHECKs,
//! indexes and unique column groups; and every `ON CONFLICT (cols)` target in `src/store/*.rs` has
//! a unique index on exactly those columns in PostgreSQL, as PostgreSQL requires.
//!
//! SQLite's schema comes from a fresh database opened by `Store::open` (which migrates it); the
//! PostgreSQL one from a real server (tests/common/postgres.rs) with the 20-odd files applied in
//! order, each in a transaction, as the store's PostgreSQL backend applies them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use common::postgres::Postgres;
use livefront::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// `integer`, `text`, `real` or `blob` when the two engines agree on a type; anything else
    /// is spelled out and never matches.
    ty: String,
    not_null: bool,
    default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    from: Vec<String>,
    table: String,
    to: Vec<String>,
    on_delete: String,
    on_update: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    unique: bool,
    columns: Vec<String>,
    /// Normalised (see `loose`); None for a full index.
    predicate: Option<String>,
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.unique { "unique" } else { "index" };
        write!(f, "{kind} ({})", self.columns.join(", "))?;
        if let Some(p) = &self.predicate {
            write!(f, " where {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Table {
    columns: BTreeMap<String, Column>,
    foreign_keys: BTreeSet<ForeignKey>,
    indexes: BTreeSet<Index>,
    /// Each CHECK as its significant tokens (see `check_tokens`).
    checks: BTreeSet<String>,
}

type Schema = BTreeMap<String, Table>;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Without PostgreSQL's casts of literals (`''::text`, `'a'::text`).
fn strip_casts(sql: &str) -> String {
    let mut s = sql.to_string();
    for cast in [
        "::text",
        "::bigint",
        "::integer",
        "::double precision",
        "::bytea",
    ] {
        s = s.replace(cast, "");
    }
    s
}

/// Lower case outside quotes, no parentheses, no casts, single spaces: `(ended_at IS NULL)` and
/// `ended_at IS NULL` read the same, as do `''::text` and `''`; `'X'` and `'x'` do not.
fn loose(sql: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in strip_casts(sql).chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            _ if quoted => out.push(c),
            '(' | ')' => out.push(' '),
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The tokens of a CHECK expression that carry its meaning: column names, literals, comparison
/// operators. SQLite keeps `role IN ('a', 'b')`, PostgreSQL shows
/// `CHECK ((role = ANY (ARRAY['a'::text, 'b'::text])))`: both become `role 'a' 'b'`.
fn check_tokens(expr: &str) -> String {
    const NOISE: &[&str] = &["check", "in", "any", "array", "="];
    let expr = strip_casts(expr);
    let mut tokens = Vec::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut lit = String::from("'");
            for d in chars.by_ref() {
                lit.push(d);
                if d == '\'' {
                    break;
                }
            }
            tokens.push(lit);
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let mut word = String::from(c.to_ascii_lowercase());
            while let Some(&d) = chars
                .peek()
                .filter(|d| d.is_ascii_alphanumeric() || **d == '_')
            {
                word.push(d.to_ascii_lowercase());
                chars.next();
            }
            tokens.push(word);
        } else if "<>=!".contains(c) {
            let mut op = String::from(c);
            while let Some(&d) = chars.peek().filter(|d| "<>=".contains(**d)) {
                op.push(d);
                chars.next();
            }
            tokens.push(op);
        }
    }
    tokens.retain(|t| !NOISE.contains(&t.as_str()));
    tokens.join(" ")
}

/// The CHECK expressions written in a CREATE TABLE statement (SQLite keeps the text only).
fn sqlite_checks(create_table: &str) -> Vec<String> {
    let upper = create_table.to_ascii_uppercase();
    let bytes = create_table.as_bytes();
    let mut checks = Vec::new();
    let mut from = 0;
    while let Some(at) = upper[from..].find("CHECK").map(|i| i + from) {
        from = at + 5;
        let word_start =
            at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        let open = upper[from..].trim_start();
        if !word_start || !open.starts_with('(') {
            continue;
        }
        let start = upper.len() - open.len();
        let mut depth = 0;
        for (i, b) in create_table[start..].bytes().enumerate() {
            match b {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                checks.push(check_tokens(&create_table[start..=start + i]));
                from = start + i;
                break;
            }
        }
    }
    checks
}

fn sqlite_type(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" => "integer".into(),
        "TEXT" => "text".into(),
        "REAL" => "real".into(),
        "BLOB" => "blob".into(),
        other => format!("sqlite {other}"),
    }
}

fn postgres_type(data_type: &str, collation: Option<&str>) -> String {
    match (data_type, collation) {
        ("bigint", _) => "integer".into(),
        ("text", Some("C")) => "text".into(),
        ("text", Some(other)) => format!("text COLLATE \"{other}\" (must be \"C\")"),
        ("text", None) => "text with the database's collation (must be COLLATE \"C\")".into(),
        ("double precision", _) => "real".into(),
        ("bytea", _) => "blob".into(),
        (other, _) => format!("postgres {other}"),
    }
}

/// The schema of a fresh SQLite store, migrated by `Store::open`.
fn sqlite_schema(path: &Path) -> Result<Schema> {
    let runtime = tokio::runtime::Runtime::new()?;
    drop(runtime.block_on(Store::open(path))?);
    let conn = rusqlite::Connection::open(path)?;
    let mut schema = Schema::new();
    let tables: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (name, sql) in tables {
        let mut table = Table::default();
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        let mut stmt = conn
            .prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")?;
        let mut rows = stmt.query([&name])?;
        while let Some(r) = rows.next()? {
            let column: String = r.get(0)?;
            let pk: i64 = r.get(4)?;
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            let column_def = Column {
                ty: sqlite_type(&r.get::<_, String>(1)?),
                // SQLite lets a non-INTEGER primary key hold NULL (a historical quirk); PostgreSQL
                // does not, and the store never writes one: a key column counts as NOT NULL.
                not_null: r.get::<_, bool>(2)? || pk > 0,
                default: r.get::<_, Option<String>>(3)?.map(|d| loose(&d)),
            };
            table.columns.insert(column, column_def);
        }
        primary_key.sort();
        let primary_key: Vec<String> = primary_key.into_iter().map(|(_, c)| c).collect();

        let mut stmt = conn.prepare(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete \
             FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )?;
        let mut rows = stmt.query([&name])?;
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        while let Some(r) = rows.next()? {
            let fk = by_id.entry(r.get(0)?).or_insert_with(|| ForeignKey {
                from: vec![],
                table: String::new(),
                to: vec![],
                on_delete: String::new(),
                on_update: String::new(),
            });
            fk.table = r.get(2)?;
            fk.from.push(r.get(3)?);
            fk.to
                .push(r.get::<_, Option<String>>(4)?.unwrap_or_default());
            fk.on_update = r.get(5)?;
            fk.on_delete = r.get(6)?;
        }
        table.foreign_keys = by_id.into_values().collect();

        let indexes: Vec<(String, bool, String, bool)> = conn
            .prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")?
            .query_map([&name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        let has_pk_index = indexes.iter().any(|(_, _, origin, _)| origin == "pk");
        for (index, unique, _, partial) in indexes {
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?
                .query_map([&index], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let predicate = if partial {
                let sql: String = conn.query_row(
                    "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                    [&index],
                    |r| r.get(0),
                )?;
                let at = sql
                    .to_ascii_uppercase()
                    .rfind(" WHERE ")
                    .context("partial index")?;
                Some(loose(&sql[at + 7..]))
            } else {
                None
            };
            table.indexes.insert(Index {
                unique,
                columns,
                predicate,
            });
        }
        // An INTEGER PRIMARY KEY is the rowid: unique, with no index of its own.
        if !primary_key.is_empty() && !has_pk_index {
            table.indexes.insert(Index {
                unique: true,
                columns: primary_key,
                predicate: None,
            });
        }
        table.checks = sqlite_checks(&sql).into_iter().collect();
        schema.insert(name, table);
    }
    Ok(schema)
}

/// The PostgreSQL migration files, in order, beside the SQLite ones they mirror.
fn postgres_migrations() -> Result<Vec<(String, String)>> {
    let list = |dir: &Path| -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        Ok(names)
    };
    let sqlite_dir = repo().join("src/store/migrations");
    let postgres_dir = sqlite_dir.join("postgres");
    let (sqlite, postgres) = (list(&sqlite_dir)?, list(&postgres_dir)?);
    if sqlite != postgres {
        bail!("migration files differ: SQLite has {sqlite:?}, PostgreSQL has {postgres:?}");
    }
    postgres
        .into_iter()
        .map(|n| Ok((n.clone(), std::fs::read_to_string(postgres_dir.join(&n))?)))
        .collect()
}

fn migrate_postgres(url: &str) -> Result<postgres::Client> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    apply(&mut client, &postgres_migrations()?)?;
    Ok(client)
}

/// Applies migration files in order, each in its own transaction.
fn apply(client: &mut postgres::Client, migrations: &[(String, String)]) -> Result<()> {
    for (name, sql) in migrations {
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)
            .with_context(|| format!("applying postgres/{name}"))?;
        tx.commit()?;
    }
    Ok(())
}

fn postgres_schema(client: &mut postgres::Client) -> Result<Schema> {
    let mut schema = Schema::new();
    for r in client.query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        &[],
    )? {
        schema.insert(r.get(0), Table::default());
    }
    for r in client.query(
        "SELECT table_name::text, column_name::text, data_type::text, collation_name::text, \
                is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_schema = 'public'",
        &[],
    )? {
        let table: String = r.get(0);
        let column = Column {
            ty: postgres_type(r.get(2), r.get::<_, Option<&str>>(3)),
            not_null: r.get::<_, &str>(4) == "NO",
            default: r.get::<_, Option<&str>>(5).map(loose),
        };
        schema
            .entry(table)
            .or_default()
            .columns
            .insert(r.get(1), column);
    }
    let action = |column: &str| {
        format!(
            "CASE {column} WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE' \
             WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END"
        )
    };
    let columns_of = |keys: &str, relation: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY k(n, o) \
             JOIN pg_attribute a ON a.attrelid = {relation} AND a.attnum = k.n ORDER BY k.o)"
        )
    };
    let foreign_keys = format!(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, {}, {}, {}, {} \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         WHERE c.contype = 'f' AND t.relnamespace = 'public'::regnamespace",
        columns_of("c.conkey", "c.conrelid"),
        columns_of("c.confkey", "c.confrelid"),
        action("c.confdeltype"),
        action("c.confupdtype"),
    );
    for r in client.query(&foreign_keys, &[])? {
        let fk = ForeignKey {
            table: r.get(1),
            from: r.get(2),
            to: r.get(3),
            on_delete: r.get(4),
            on_update: r.get(5),
        };
        schema.entry(r.get(0)).or_default().foreign_keys.insert(fk);
    }
    let indexes = format!(
        "SELECT i.indrelid::regclass::text, i.indisunique, {}, pg_get_expr(i.indpred, i.indrelid), \
                i.indexprs IS NOT NULL \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
         WHERE t.relnamespace = 'public'::regnamespace",
        columns_of("i.indkey::int2[]", "i.indrelid"),
    );
    for r in client.query(&indexes, &[])? {
        let table: String = r.get(0);
        let mut columns: Vec<String> = r.get(2);
        if r.get::<_, bool>(4) {
            columns.push("<expression>".into());
        }
        let index = Index {
            unique: r.get(1),
            columns,
            predicate: r.get::<_, Option<&str>>(3).map(loose),
        };
        schema.entry(table).or_default().indexes.insert(index);
    }
    for r in client.query(
        "SELECT c.conrelid::regclass::text, pg_get_constraintdef(c.oid) \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         WHERE c.contype = 'c' AND t.relnamespace = 'public'::regnamespace",
        &[],
    )? {
        let table: String = r.get(0);
        schema
            .entry(table)
            .or_default()
            .checks
            .insert(check_tokens(r.get(1)));
    }
    Ok(schema)
}

/// Every difference between the two schemas, each naming its table (and column).
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for name in sqlite.keys().filter(|n| !postgres.contains_key(*n)) {
        out.push(format!("table {name}: missing in PostgreSQL"));
    }
    for name in postgres.keys().filter(|n| !sqlite.contains_key(*n)) {
        out.push(format!("table {name}: only in PostgreSQL"));
    }
    for (name, s) in sqlite {
        let Some(p) = postgres.get(name) else {
            continue;
        };
        for (column, sc) in &s.columns {
            match p.columns.get(column) {
                None => out.push(format!("{name}.{column}: missing in PostgreSQL")),
                Some(pc) => {
                    if sc.ty != pc.ty {
                        out.push(format!(
                            "{name}.{column}: type {} in SQLite, {} in PostgreSQL",
                            sc.ty, pc.ty
                        ));
                    }
                    if sc.not_null != pc.not_null {
                        out.push(format!(
                            "{name}.{column}: NOT NULL is {} in SQLite, {} in PostgreSQL",
                            sc.not_null, pc.not_null
                        ));
                    }
                    if sc.default != pc.default {
                        out.push(format!(
                            "{name}.{column}: default {:?} in SQLite, {:?} in PostgreSQL",
                            sc.default, pc.default
                        ));
                    }
                }
            }
        }
        // `rowid`: SQLite's implicit row id, made explicit where the code orders by it.
        for column in p
            .columns
            .keys()
            .filter(|c| !s.columns.contains_key(*c) && *c != "rowid")
        {
            out.push(format!("{name}.{column}: only in PostgreSQL"));
        }
        for fk in s.foreign_keys.difference(&p.foreign_keys) {
            out.push(format!("{name}: foreign key {fk:?} missing in PostgreSQL"));
        }
        for fk in p.foreign_keys.difference(&s.foreign_keys) {
            out.push(format!("{name}: foreign key {fk:?} only in PostgreSQL"));
        }
        for index in s.indexes.difference(&p.indexes) {
            out.push(format!("{name}: {index} missing in PostgreSQL"));
        }
        for index in p.indexes.difference(&s.indexes) {
            out.push(format!("{name}: {index} only in PostgreSQL"));
        }
        for check in s.checks.difference(&p.checks) {
            out.push(format!("{name}: CHECK [{check}] missing in PostgreSQL"));
        }
        for check in p.checks.difference(&s.checks) {
            out.push(format!("{name}: CHECK [{check}] only in PostgreSQL"));
        }
    }
    out
}

/// An `INSERT … ON CONFLICT (cols)` of the store's code: where, into which table, on what.
#[derive(Debug)]
struct ConflictTarget {
    at: String,
    table: String,
    columns: BTreeSet<String>,
}

/// Scans the store's Rust sources for `ON CONFLICT (cols)` and the `INSERT INTO table` before it.
/// (`ON CONFLICT DO NOTHING` without a target works with any unique constraint.)
fn conflict_targets() -> Result<Vec<ConflictTarget>> {
    let dir = repo().join("src/store");
    let mut found = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| Ok(e?.path()))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        // ASCII lower-casing keeps byte offsets.
        let lower = text.to_ascii_lowercase();
        let mut from = 0;
        while let Some(at) = lower[from..].find("on conflict").map(|i| i + from) {
            from = at + "on conflict".len();
            let line = text[..at].lines().count();
            let at_name = format!(
                "src/store/{}:{line}",
                file.file_name().unwrap().to_string_lossy()
            );
            let rest = lower[from..].trim_start();
            if !rest.starts_with('(') {
                continue;
            }
            let close = rest
                .find(')')
                .with_context(|| format!("{at_name}: unclosed target"))?;
            let columns = rest[1..close]
                .split(',')
                .map(|c| c.trim().to_string())
                .collect();
            let insert = lower[..at]
                .rfind("insert")
                .with_context(|| format!("{at_name}: ON CONFLICT without an INSERT before it"))?;
            let into = lower[insert..at]
                .find(" into ")
                .with_context(|| format!("{at_name}: INSERT without INTO"))?;
            let table: String = lower[insert + into + " into ".len()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(ConflictTarget {
                at: at_name,
                table,
                columns,
            });
        }
    }
    Ok(found)
}

#[test]
fn postgres_migrations_build_the_sqlite_schema() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite = sqlite_schema(&dir.path().join("livefront.db"))?;
    assert!(
        sqlite.len() >= 40,
        "SQLite schema read back only {} tables",
        sqlite.len()
    );

    let pg = Postgres::start()?;
    let mut client = migrate_postgres(&pg.fresh_database()?)?;
    let postgres = postgres_schema(&mut client)?;

    let differences = differences(&sqlite, &postgres);
    assert!(
        differences.is_empty(),
        "the PostgreSQL schema differs from SQLite's ({} differences):\n{}",
        differences.len(),
        differences.join("\n")
    );
    Ok(())
}

#[test]
fn every_on_conflict_target_has_a_unique_index_in_postgres() -> Result<()> {
    let targets = conflict_targets()?;
    assert!(
        !targets.is_empty(),
        "found no ON CONFLICT (cols) in src/store/*.rs"
    );

    let pg = Postgres::start()?;
    let mut client = migrate_postgres(&pg.fresh_database()?)?;
    let schema = postgres_schema(&mut client)?;

    let mut missing = Vec::new();
    for target in &targets {
        let Some(table) = schema.get(&target.table) else {
            missing.push(format!(
                "{}: table {} does not exist in PostgreSQL",
                target.at, target.table
            ));
            continue;
        };
        // PostgreSQL infers the arbiter from a full unique index on the same set of columns.
        let matches = table.indexes.iter().any(|i| {
            i.unique
                && i.predicate.is_none()
                && i.columns.iter().cloned().collect::<BTreeSet<_>>() == target.columns
        });
        if !matches {
            missing.push(format!(
                "{}: ON CONFLICT ({}) on {}: no unique index on exactly these columns",
                target.at,
                target
                    .columns
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                target.table
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    Ok(())
}

/// SQLite rebuilds `notifications` twice (0018, 0019) and copies its rows; PostgreSQL alters it in
/// place: a row written before keeps its id and fields, gains `subject = ''`, and the widened
/// CHECK and UNIQUE hold after.
#[test]
fn postgres_migrations_keep_the_rows_written_before_them() -> Result<()> {
    let pg = Postgres::start()?;
    let mut client = postgres::Client::connect(&pg.fresh_database()?, postgres::NoTls)?;
    let migrations = postgres_migrations()?;
    let split = migrations
        .iter()
        .position(|(n, _)| n.as_str() >= "0018")
        .context("no 0018")?;
    apply(&mut client, &migrations[..split])?;
    let t = "2026-12-04T19:00:00.000Z";
    client.batch_execute(&format!(
        "INSERT INTO creators (id, handle, created_at) VALUES ('c1', 'alice', '{t}');
         INSERT INTO streams (id, creator_id, title, mode, state, stream_key, created_at)
             VALUES ('s1', 'c1', 'Live', 'public', 'live', 'k1', '{t}');
         INSERT INTO viewers (id, handle, created_at) VALUES ('v1', 'bob', '{t}');
         INSERT INTO tokens (hash, role, viewer_id, created_at) VALUES ('h1', 'viewer', 'v1', '{t}');
         INSERT INTO notifications (viewer_id, kind, stream_id, created_at, title)
             VALUES ('v1', 'live', 's1', '{t}', 'Live');"
    ))?;
    let old_id: i64 = client
        .query_one("SELECT id FROM notifications", &[])?
        .get(0);
    apply(&mut client, &migrations[split..])?;

    let row = client.query_one(
        "SELECT id, kind, title, subject, detail FROM notifications",
        &[],
    )?;
    assert_eq!(row.get::<_, i64>(0), old_id);
    assert_eq!(row.get::<_, &str>(1), "live");
    assert_eq!(row.get::<_, Option<&str>>(2), Some("Live"));
    assert_eq!(row.get::<_, &str>(3), "");
    assert_eq!(row.get::<_, Option<&str>>(4), None);

    let insert = "INSERT INTO notifications (viewer_id, kind, stream_id, created_at, subject) \
                  VALUES ('v1', $1, 's1', '2026-12-04T19:01:00.000Z', $2) RETURNING id";
    let won: i64 = client.query_one(insert, &[&"auction_won", &"a1"])?.get(0);
    assert!(won > old_id, "the identity went back: {won} after {old_id}");
    client.query_one(insert, &[&"auction_won", &"a2"])?;
    assert!(
        client.query_one(insert, &[&"auction_won", &"a1"]).is_err(),
        "unique (viewer, stream, kind, subject)"
    );
    assert!(
        client.query_one(insert, &[&"live", &""]).is_err(),
        "one 'live' per viewer and stream"
    );
    assert!(
        client.query_one(insert, &[&"bogus", &"x"]).is_err(),
        "CHECK on kind"
    );
    Ok(())
}

#[test]
fn the_test_server_uses_byte_order_and_stops_with_its_handle() -> Result<()> {
    let pg = Postgres::start()?;
    let mut client = postgres::Client::connect(&pg.fresh_database()?, postgres::NoTls)?;
    let collate: String = client
        .query_one(
            "SELECT datcollate::text FROM pg_database WHERE datname = current_database()",
            &[],
        )?
        .get(0);
    assert_eq!(collate, "C");
    // Byte order, as SQLite compares text: upper case before lower case.
    let lower_first: bool = client
        .query_one("SELECT 'a'::text < 'B'::text", &[])?
        .get(0);
    assert!(!lower_first);
    drop(client);
    let (pid, url, dir) = (pg.pid(), pg.url(), pg.dir().to_owned());
    drop(pg);
    assert!(
        !Postgres::running(pid),
        "the server (pid {pid}) outlived its handle"
    );
    assert!(!dir.exists(), "{} outlived the server", dir.display());
    assert!(postgres::Client::connect(&url, postgres::NoTls).is_err());
    Ok(())
}

/// Set in the environment of the helper process below.
const WATCHDOG_HELPER: &str = "STORE_SCHEMA_WATCHDOG_HELPER";

/// Run as a child process by `a_killed_test_process_leaves_no_server_behind`: starts a server,
/// prints its pid and directory, and waits for stdin to close (it is killed before).
#[test]
#[ignore = "a helper process of a_killed_test_process_leaves_no_server_behind"]
fn watchdog_helper() -> Result<()> {
    if std::env::var_os(WATCHDOG_HELPER).is_none() {
        return Ok(());
    }
    let pg = Postgres::start()?;
    println!("postgres-server {} {}", pg.pid(), pg.dir().display());
    std::io::stdin().read_line(&mut String::new())?;
    Ok(())
}

#[test]
fn a_killed_test_process_leaves_no_server_behind() -> Result<()> {
    use std::io::BufRead;
    let mut helper = std::process::Command::new(std::env::current_exe()?)
        .args([
            "watchdog_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WATCHDOG_HELPER, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = std::io::BufReader::new(helper.stdout.take().context("stdout")?);
    let mut server = None;
    for line in stdout.lines() {
        // libtest prints "test watchdog_helper ... " before the test's own output, on that line.
        let line = line?;
        if let Some((_, rest)) = line.split_once("postgres-server ") {
            let (pid, dir) = rest.split_once(' ').context("server line")?;
            server = Some((pid.parse::<u32>()?, PathBuf::from(dir)));
            break;
        }
    }
    let (pid, dir) = server.context("the helper printed no server line")?;
    assert!(Postgres::running(pid));
    helper.kill()?; // SIGKILL: no destructor runs
    helper.wait()?;
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while Postgres::running(pid) || dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "server {pid} or {} still there after its test process was killed",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// TLS to PostgreSQL with libpq's names (`sslmode=require`, `sslrootcert`): the store's
/// connections are encrypted once the server's certificate checks out against the root given,
/// and a server it cannot check, or one without TLS, is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_reaches_postgres_over_tls_and_checks_the_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = common::self_signed_certificate(dir.path()).await?;
    let (c, k) = (cert.clone(), key.clone());
    let pg = tokio::task::spawn_blocking(move || Postgres::start_with_tls(&c, &k)).await??;
    let database = tokio::task::block_in_place(|| pg.fresh_database())?;
    let url = format!("{database}?sslmode=require&sslrootcert={}", cert.display());
    let config = livefront::config::database::DatabaseConfig {
        url: Some(url.clone()),
    };
    assert_eq!(config.validate(), Ok(()), "the setting is accepted");
    let store = Store::connect(&url).await?;
    let name = database
        .rsplit('/')
        .next()
        .context("database name")?
        .to_string();
    let (admin, query) = (
        pg.url(),
        format!(
            "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{name}'"
        ),
    );
    let ssl =
        tokio::task::spawn_blocking(move || common::postgres::texts(&admin, &query)).await??;
    assert!(
        !ssl.is_empty() && ssl.iter().all(|s| s == "true"),
        "the store's connections: {ssl:?}"
    );
    drop(store);

    // Not the root that signed it (the system's roots only): refused, and said why.
    let unchecked = format!("{database}?sslmode=require");
    let refused = Store::connect(&unchecked)
        .await
        .err()
        .context("connected")?;
    assert!(
        refused.to_string().contains("certificate"),
        "refused with: {refused}"
    );
    // A server without TLS: refused too.
    let plain = tokio::task::spawn_blocking(Postgres::start).await??;
    let plain_url = format!(
        "{}?sslmode=require&sslrootcert={}",
        tokio::task::block_in_place(|| plain.fresh_database())?,
        cert.display()
    );
    let refused = Store::connect(&plain_url)
        .await
        .err()
        .context("connected")?;
    assert!(
        refused.to_string().contains("does not support TLS"),
        "refused with: {refused}"
    );
    Ok(())
}
