//! Group definition files → typed groups: parsing (TOML/JSON), shape checks, problems, lints.
//!
//! Nothing here knows the customers schema; checks against it happen in `compile`.

mod lint;
pub mod ops;
pub mod raw;

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use lint::lint;
pub use ops::{Arity, Op};
pub use raw::{IdLiteral, Literal, RawCondition};

use raw::{RawClause, RawGroup};

/// A parsed, shape-checked group definition.
#[derive(Debug, Clone)]
pub struct Group {
    /// The group id: the file stem.
    pub id: String,
    /// Display name (`name = ...`), if any.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The file it came from, as given on the command line.
    pub file: String,
    /// Include clauses (OR-ed).
    pub include: Vec<Clause>,
    /// Exclude clauses (OR-ed).
    pub exclude: Vec<Clause>,
    /// Static overrides.
    pub statics: Statics,
    /// `sha256:<hex>` of the definition file's bytes.
    pub definition_hash: String,
}

/// How a clause combines its conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Match {
    /// AND; true when there are no conditions.
    All,
    /// OR; false when there are no conditions.
    Any,
}

/// One include or exclude clause.
#[derive(Debug, Clone)]
pub struct Clause {
    /// AND or OR.
    pub mode: Match,
    /// The conditions, in file order.
    pub conditions: Vec<Condition>,
    /// Where the clause is, for clause-level lints.
    pub at: Location,
}

/// A condition and where it was written.
#[derive(Debug, Clone)]
pub struct Condition {
    /// What it tests.
    pub spec: ConditionSpec,
    /// Where it is.
    pub at: Location,
}

/// The four kinds of condition of SPEC §2.2.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionSpec {
    /// `{ attribute, op, value(s), ignore_case }`.
    Attribute(AttributeCondition),
    /// `in group` / `not in group`.
    GroupRef {
        /// The referenced group id.
        group: String,
        /// `not in group`.
        negated: bool,
    },
    /// `{ sql = "..." }`.
    Sql(String),
    /// A behavioural condition over an event table (SPEC §3.4).
    Events(Box<EventCondition>),
}

/// An aggregate of an event table (SPEC §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    /// Matching events; 0 for none.
    Count,
    /// Distinct non-null values of `column`; 0 for none.
    CountDistinct,
    /// Sum of `column`; 0 for none.
    Sum,
    /// Smallest `column` value; missing for none.
    Min,
    /// Largest `column` value; missing for none.
    Max,
    /// Mean of `column`; missing for none.
    Avg,
    /// Earliest time; missing for none.
    First,
    /// Latest time; missing for none.
    Last,
}

impl Aggregate {
    const ALL: [(Aggregate, &'static str); 8] = [
        (Aggregate::Count, "count"),
        (Aggregate::CountDistinct, "count_distinct"),
        (Aggregate::Sum, "sum"),
        (Aggregate::Min, "min"),
        (Aggregate::Max, "max"),
        (Aggregate::Avg, "avg"),
        (Aggregate::First, "first"),
        (Aggregate::Last, "last"),
    ];

    /// Parses the spelling of SPEC §3.4.
    pub fn parse(text: &str) -> Option<Aggregate> {
        let text = text.trim().to_lowercase();
        Self::ALL.iter().find(|(_, n)| *n == text).map(|(a, _)| *a)
    }

    /// The spelling of SPEC §3.4.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .expect("listed")
            .1
    }

    /// Whether it aggregates a `column` (rather than counting events or reading times).
    pub fn needs_column(self) -> bool {
        matches!(
            self,
            Aggregate::CountDistinct
                | Aggregate::Sum
                | Aggregate::Min
                | Aggregate::Max
                | Aggregate::Avg
        )
    }

    /// Whether a customer without events has 0 (rather than a missing value).
    pub fn zero_when_empty(self) -> bool {
        matches!(
            self,
            Aggregate::Count | Aggregate::CountDistinct | Aggregate::Sum
        )
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `{ events, aggregate, column, where, within_last / before / after, op, value }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCondition {
    /// The event table's name.
    pub table: String,
    /// What is computed per customer.
    pub aggregate: Aggregate,
    /// The aggregated column (count_distinct, sum, min, max, avg; optional for first/last).
    pub column: Option<String>,
    /// Conditions on the event rows, all of which must hold.
    pub filters: Vec<AttributeCondition>,
    /// `within_last` window, as written (validated).
    pub within_last: Option<String>,
    /// Only events strictly before this instant.
    pub before: Option<Literal>,
    /// Only events strictly after this instant.
    pub after: Option<Literal>,
    /// The comparison of the aggregate; its `attribute` is the aggregate's name.
    pub comparison: AttributeCondition,
}

/// An attribute comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeCondition {
    /// The customers column.
    pub attribute: String,
    /// The operator.
    pub op: Op,
    /// The values, normalized to a list whatever `value`/`values` spelling was used.
    pub values: Vec<Literal>,
    /// Case-insensitive string comparison.
    pub ignore_case: bool,
}

/// Static overrides of a group.
#[derive(Debug, Clone, Default)]
pub struct Statics {
    /// Always members (unless excluded).
    pub include: Vec<IdLiteral>,
    /// Never members.
    pub exclude: Vec<IdLiteral>,
    /// A CSV or Parquet file of ids to include.
    pub include_from: Option<String>,
    /// A CSV or Parquet file of ids to exclude.
    pub exclude_from: Option<String>,
}

impl Statics {
    /// Whether the group has any static override at all.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.include_from.is_none()
            && self.exclude_from.is_none()
    }
}

/// Where something was written: file, line (TOML only), and its path inside the group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The definition file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The group id.
    pub group: String,
    /// e.g. `include[0].conditions[1]`.
    pub path: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ", {}", self.path)?;
        }
        Ok(())
    }
}

/// Error or lint warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Refuses the run (exit 2).
    Error,
    /// Reported, exit 0.
    Warning,
}

/// A definition problem: what is wrong, where, and a hint when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Lowercase, quoting the input: `unknown attribute 'agee'`.
    pub message: String,
    /// Where.
    pub at: Location,
    /// e.g. `did you mean 'age'?`
    pub hint: Option<String>,
}

impl Problem {
    /// An error at a location.
    pub fn error(at: &Location, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            message: message.into(),
            at: at.clone(),
            hint: None,
        }
    }

    /// A lint warning at a location.
    pub fn warning(at: &Location, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(at, message)
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Whether this problem refuses the run.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.at.group.is_empty() {
            write!(f, " in group '{}'", self.at.group)?;
        }
        write!(f, " ({})", self.at)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, formatted as a hint, if any is close enough.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean '{c}'?"))
}

/// Whether `id` matches `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_valid_group_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// The definition files of a folder: `*.toml` and `*.json`, sorted by name.
pub fn definition_files(dir: &Path) -> crate::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => crate::Error::Usage(format!(
            "no definitions folder '{}': run cohort in a project folder (one with queries/ \
             and cohort.toml), or pass --queries <dir>",
            dir.display()
        )),
        _ => crate::Error::io(dir.display(), e),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| crate::Error::io(dir.display(), e))?
            .path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if path.is_file() && (ext == "toml" || ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every definition in `dir`. Returns the groups that parsed and every problem found.
pub fn load_dir(dir: &Path) -> crate::Result<(Vec<Group>, Vec<Problem>)> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for file in definition_files(dir)? {
        let bytes = std::fs::read(&file).map_err(|e| crate::Error::io(file.display(), e))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let at = Location {
                    file: file.display().to_string(),
                    group: file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    line: Some(valid.iter().filter(|b| **b == b'\n').count() + 1),
                    ..Default::default()
                };
                problems.push(Problem::error(
                    &at,
                    format!(
                        "the file is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                        valid.len()
                    ),
                ));
                continue;
            }
        };
        match parse_group(&file, &text) {
            Ok((group, mut found)) => {
                problems.append(&mut found);
                if let Some(previous) = groups.iter().find(|g: &&Group| g.id == group.id) {
                    let at = Location {
                        file: group.file.clone(),
                        group: group.id.clone(),
                        ..Default::default()
                    };
                    problems.push(Problem::error(
                        &at,
                        format!(
                            "group id '{}' is also defined by '{}'",
                            group.id, previous.file
                        ),
                    ));
                    continue;
                }
                groups.push(group);
            }
            Err(problem) => problems.push(*problem),
        }
    }
    Ok((groups, problems))
}

/// Parses one definition file. A file that cannot be parsed at all is one problem.
pub fn parse_group(file: &Path, text: &str) -> Result<(Group, Vec<Problem>), Box<Problem>> {
    let file_name = file.display().to_string();
    let id = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    let file_at = Location {
        file: file_name.clone(),
        group: id.clone(),
        ..Default::default()
    };
    let is_json = file.extension().and_then(|e| e.to_str()) == Some("json");
    let raw: RawGroup<(RawCondition, Option<usize>)> = if is_json {
        let raw: RawGroup<RawCondition> = serde_json::from_str(text).map_err(|e| {
            let at = Location {
                line: Some(e.line()),
                ..file_at.clone()
            };
            Box::new(Problem::error(&at, format!("unparsable file: {e}")))
        })?;
        raw.map_conditions(|c| (c, None))
    } else {
        let raw: RawGroup<toml::Spanned<RawCondition>> = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().trim().to_string();
            let at = Location {
                line,
                ..file_at.clone()
            };
            Box::new(Problem::error(&at, format!("unparsable file: {message}")))
        })?;
        raw.map_conditions(|c| {
            let line = line_of(text, c.span().start);
            (c.into_inner(), Some(line))
        })
    };

    let mut problems = Vec::new();
    if !is_valid_group_id(&id) {
        problems.push(Problem::error(
            &file_at,
            format!("invalid group id '{id}': file stems must match [a-z0-9][a-z0-9_-]{{0,63}}"),
        ));
    }
    let include = type_clauses(raw.include, "include", &file_at, &mut problems);
    let exclude = type_clauses(raw.exclude, "exclude", &file_at, &mut problems);
    let statics = Statics {
        include: raw.statics.include,
        exclude: raw.statics.exclude,
        include_from: raw.statics.include_from,
        exclude_from: raw.statics.exclude_from,
    };
    let group = Group {
        id,
        name: raw.name,
        description: raw.description,
        file: file_name,
        include,
        exclude,
        statics,
        definition_hash: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
    };
    Ok((group, problems))
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl<C> RawGroup<C> {
    fn map_conditions<D>(self, f: impl Fn(C) -> D + Copy) -> RawGroup<D> {
        let map = |clauses: Vec<RawClause<C>>| {
            clauses
                .into_iter()
                .map(|c| RawClause {
                    mode: c.mode,
                    conditions: c.conditions.into_iter().map(f).collect(),
                })
                .collect()
        };
        RawGroup {
            name: self.name,
            description: self.description,
            include: map(self.include),
            exclude: map(self.exclude),
            statics: self.statics,
        }
    }
}

fn type_clauses(
    clauses: Vec<RawClause<(RawCondition, Option<usize>)>>,
    kind: &str,
    file_at: &Location,
    problems: &mut Vec<Problem>,
) -> Vec<Clause> {
    let mut typed = Vec::new();
    for (i, clause) in clauses.into_iter().enumerate() {
        let clause_at = Location {
            path: format!("{kind}[{i}]"),
            line: clause.conditions.first().and_then(|c| c.1),
            ..file_at.clone()
        };
        let mode = match clause.mode.as_deref().map(|m| m.trim().to_lowercase()) {
            None => Match::All,
            Some(m) if m == "all" => Match::All,
            Some(m) if m == "any" => Match::Any,
            Some(m) => {
                problems.push(Problem::error(
                    &clause_at,
                    format!("invalid match '{m}': expected 'all' or 'any'"),
                ));
                Match::All
            }
        };
        let mut conditions = Vec::new();
        for (j, (raw, line)) in clause.conditions.into_iter().enumerate() {
            let at = Location {
                line,
                path: format!("{kind}[{i}].conditions[{j}]"),
                ..file_at.clone()
            };
            match type_condition(raw, &at) {
                Ok(spec) => conditions.push(Condition { spec, at }),
                Err(p) => problems.push(*p),
            }
        }
        typed.push(Clause {
            mode,
            conditions,
            at: clause_at,
        });
    }
    typed
}

/// A value no condition can mean: a float that is not a number (`nan`, `inf`), or text
/// with control characters (invisible in every message and table that would show it).
fn hostile_value(raw: &RawCondition) -> Option<String> {
    let literals = raw
        .value
        .iter()
        .chain(raw.values.iter().flatten())
        .chain(raw.before.iter())
        .chain(raw.after.iter());
    let texts = [
        &raw.attribute,
        &raw.op,
        &raw.sql,
        &raw.events,
        &raw.aggregate,
        &raw.column,
        &raw.within_last,
    ]
    .into_iter()
    .flatten();
    for literal in literals {
        match literal {
            Literal::Float(x) if !x.is_finite() => {
                return Some(format!(
                    "value {x} is not a number a condition can compare with"
                ))
            }
            Literal::Str(s) => {
                if let Some(c) = s.chars().find(|c| c.is_control()) {
                    return Some(format!(
                        "value {s:?} contains the control character U+{:04X}",
                        c as u32
                    ));
                }
            }
            _ => {}
        }
    }
    for text in texts {
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Some(format!(
                "{text:?} contains the control character U+{:04X}",
                c as u32
            ));
        }
    }
    None
}

/// Types a condition's shape (which keys, how many values); schema checks come later.
pub fn type_condition(raw: RawCondition, at: &Location) -> Result<ConditionSpec, Box<Problem>> {
    let err = |msg: String| Box::new(Problem::error(at, msg));
    if let Some(problem) = hostile_value(&raw) {
        return Err(err(problem));
    }
    if raw.events.is_some() {
        return type_event_condition(raw, at).map(|e| ConditionSpec::Events(Box::new(e)));
    }
    let event_only = [
        ("aggregate", raw.aggregate.is_some()),
        ("column", raw.column.is_some()),
        ("within_last", raw.within_last.is_some()),
        ("before", raw.before.is_some()),
        ("after", raw.after.is_some()),
        ("where", raw.where_.is_some()),
    ];
    if let Some((key, _)) = event_only.iter().find(|(_, given)| *given) {
        return Err(err(format!(
            "'{key}' belongs to behavioural conditions; add 'events = \"<table>\"'"
        )));
    }
    if let Some(sql) = raw.sql {
        if raw.attribute.is_some()
            || raw.op.is_some()
            || raw.value.is_some()
            || raw.values.is_some()
        {
            return Err(err(
                "a 'sql' condition takes no attribute, op or value".into()
            ));
        }
        return Ok(ConditionSpec::Sql(sql));
    }
    let Some(op_text) = raw.op else {
        return Err(err("condition has no 'op'".into()));
    };
    let Some(op) = Op::parse(&op_text) else {
        let problem = Problem::error(at, format!("unknown operator '{op_text}'"));
        return Err(Box::new(
            problem.with_hint(did_you_mean(&op_text, Op::all_spellings())),
        ));
    };
    let values = match (raw.value, raw.values) {
        (Some(_), Some(_)) => return Err(err("give either 'value' or 'values', not both".into())),
        (Some(v), None) => vec![v],
        (None, Some(vs)) => vs,
        (None, None) => Vec::new(),
    };
    if matches!(op, Op::InGroup | Op::NotInGroup) {
        return match values.as_slice() {
            [Literal::Str(group)] => Ok(ConditionSpec::GroupRef {
                group: group.clone(),
                negated: op == Op::NotInGroup,
            }),
            _ => Err(err(format!(
                "'{op}' takes one group id as a string 'value'"
            ))),
        };
    }
    let Some(attribute) = raw.attribute else {
        return Err(err(format!("condition with op '{op}' has no 'attribute'")));
    };
    let arity_ok = match op.arity() {
        Arity::None => values.is_empty(),
        Arity::One => values.len() == 1,
        Arity::Two => values.len() == 2,
        Arity::List => true,
    };
    if !arity_ok {
        let wanted = match op.arity() {
            Arity::None => "no value",
            Arity::One => "exactly one value",
            Arity::Two => "two values [low, high]",
            Arity::List => "a list of values",
        };
        return Err(err(format!(
            "'{attribute} {op}' takes {wanted}, got {}",
            values.len()
        )));
    }
    let ignore_case = raw.ignore_case.unwrap_or(false);
    if ignore_case && !op.accepts_ignore_case() {
        return Err(err(format!("ignore_case does not apply to '{op}'")));
    }
    Ok(ConditionSpec::Attribute(AttributeCondition {
        attribute,
        op,
        values,
        ignore_case,
    }))
}

/// The event tables named by any condition of `groups`.
pub fn event_tables(groups: &[Group]) -> std::collections::BTreeSet<String> {
    groups
        .iter()
        .flat_map(|g| g.include.iter().chain(&g.exclude))
        .flat_map(|c| &c.conditions)
        .filter_map(|c| match &c.spec {
            ConditionSpec::Events(e) => Some(e.table.clone()),
            _ => None,
        })
        .collect()
}

/// Types `{ events = ..., aggregate = ..., ... }`; tables and columns are checked in
/// `compile`, against the event tables' schemas.
fn type_event_condition(raw: RawCondition, at: &Location) -> Result<EventCondition, Box<Problem>> {
    let err = |msg: String| Box::new(Problem::error(at, msg));
    let table = raw.events.clone().unwrap_or_default();
    if raw.attribute.is_some() || raw.sql.is_some() {
        return Err(err(format!(
            "a condition on events '{table}' takes no 'attribute' or 'sql'; aggregate a 'column' instead"
        )));
    }
    let Some(aggregate_text) = raw.aggregate.as_deref() else {
        return Err(Box::new(
            Problem::error(
                at,
                format!("condition on events '{table}' has no 'aggregate'"),
            )
            .with_hint(Some("add e.g. aggregate = \"count\"".into())),
        ));
    };
    let Some(aggregate) = Aggregate::parse(aggregate_text) else {
        return Err(Box::new(
            Problem::error(at, format!("unknown aggregate '{aggregate_text}'")).with_hint(
                did_you_mean(aggregate_text, Aggregate::ALL.iter().map(|(_, n)| *n)),
            ),
        ));
    };
    if aggregate.needs_column() && raw.column.is_none() {
        return Err(err(format!(
            "aggregate '{aggregate}' on events '{table}' needs a 'column'"
        )));
    }
    if aggregate == Aggregate::Count && raw.column.is_some() {
        return Err(Box::new(
            Problem::error(
                at,
                "aggregate 'count' counts events and takes no 'column'".to_string(),
            )
            .with_hint(Some("use 'count_distinct' to count distinct values".into())),
        ));
    }
    if let Some(window) = &raw.within_last {
        if crate::compile::attribute::parse_window(window).is_none() {
            return Err(Box::new(
                Problem::error(at, format!("bad window within_last = '{window}'")).with_hint(Some(
                    "write a whole number followed by h, d or w, e.g. '90d'".into(),
                )),
            ));
        }
    }
    for (key, bound) in [("before", &raw.before), ("after", &raw.after)] {
        if let Some(value) = bound {
            if crate::compile::attribute::parse_instant(value).is_none() {
                return Err(Box::new(
                    Problem::error(at, format!("bad {key} = {value}: not a date or timestamp"))
                        .with_hint(Some("write e.g. 2026-01-31 or 2026-01-31T12:00:00Z".into())),
                ));
            }
        }
    }
    let mut filters = Vec::new();
    for (i, condition) in raw
        .where_
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let mut filter_at = at.clone();
        filter_at.path = format!("{}.where[{i}]", at.path);
        match type_condition(condition, &filter_at)? {
            ConditionSpec::Attribute(a) => filters.push(a),
            other => {
                return Err(Box::new(Problem::error(
                    &filter_at,
                    format!(
                        "'where' of events '{table}' takes attribute conditions only, not {other}"
                    ),
                )))
            }
        }
    }
    let comparison = type_condition(
        RawCondition {
            attribute: Some(aggregate.name().to_string()),
            op: raw.op,
            value: raw.value,
            values: raw.values,
            ignore_case: raw.ignore_case,
            ..Default::default()
        },
        at,
    )?;
    let ConditionSpec::Attribute(comparison) = comparison else {
        return Err(err(format!(
            "compare the aggregate with an operator such as '>=', not {comparison}"
        )));
    };
    Ok(EventCondition {
        table,
        aggregate,
        column: raw.column,
        filters,
        within_last: raw.within_last,
        before: raw.before,
        after: raw.after,
        comparison,
    })
}

impl fmt::Display for ConditionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConditionSpec::Attribute(a) => {
                write!(f, "{} {}", a.attribute, a.op)?;
                match a.values.as_slice() {
                    [] => Ok(()),
                    [v] => write!(f, " {v}"),
                    vs => {
                        let list: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
                        write!(f, " [{}]", list.join(", "))
                    }
                }
            }
            ConditionSpec::GroupRef { group, negated } => {
                write!(
                    f,
                    "{} '{group}'",
                    if *negated { "not in group" } else { "in group" }
                )
            }
            ConditionSpec::Sql(sql) => write!(f, "sql '{sql}'"),
            ConditionSpec::Events(e) => {
                write!(f, "{}", e.aggregate)?;
                if let Some(column) = &e.column {
                    write!(f, "({column})")?;
                }
                write!(f, " of events '{}'", e.table)?;
                if let Some(window) = &e.within_last {
                    write!(f, " within the last {window}")?;
                }
                let c = ConditionSpec::Attribute(e.comparison.clone()).to_string();
                write!(
                    f,
                    " {}",
                    c.trim_start_matches(e.aggregate.name()).trim_start()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids() {
        for ok in ["a", "adults", "us-ca_2", "0x", &"a".repeat(64)] {
            assert!(is_valid_group_id(ok), "{ok}");
        }
        for bad in ["", "Adults", "_a", "-a", "a b", "a.b", &"a".repeat(65)] {
            assert!(!is_valid_group_id(bad), "{bad}");
        }
    }

    #[test]
    fn toml_conditions_carry_their_line() {
        let text = "name = \"x\"\n[[include]]\nconditions = [\n  { attribute = \"age\", op = \"gt\", value = 1 },\n  { attribute = \"agee\", op = \"gtt\", value = 1 },\n]\n";
        let (group, problems) = parse_group(Path::new("queries/x.toml"), text).unwrap();
        assert_eq!(group.include[0].conditions[0].at.line, Some(4));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].at.line, Some(5));
        assert_eq!(problems[0].hint.as_deref(), Some("did you mean 'gt'?"));
    }

    #[test]
    fn json_is_accepted() {
        let text = r#"{"include": [{"match": "any", "conditions": [{"attribute": "age", "op": ">=", "values": [18]}]}], "static": {"include": ["C1", 2]}}"#;
        let (group, problems) = parse_group(Path::new("q/adults.json"), text).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(group.include[0].mode, Match::Any);
        assert_eq!(
            group.statics.include,
            vec![IdLiteral::Str("C1".into()), IdLiteral::Int(2)]
        );
    }
}
