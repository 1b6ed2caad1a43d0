//! Typed groups → DataFusion expressions and bitmap formulas, checked against the schema.
//!
//! Every distinct condition becomes one boolean expression (`... IS TRUE`, so never NULL);
//! a group becomes formulas over those conditions and over other groups, ordered so that
//! every group comes after the groups it references.

pub(crate) mod attribute;
mod compare;
mod decimal;
pub(crate) mod events;
mod sql;
pub(crate) mod tree;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::Schema;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;

use crate::definition::{did_you_mean, ConditionSpec, Group, Location, Match, Problem};
use events::{EventAggregate, EventTables};

/// A problem with one condition: message plus optional hint. Location is added by the caller.
pub(crate) type ConditionError = (String, Option<String>);

/// An operator given an operand of the wrong shape: typing makes this impossible, and it
/// is reported as a problem of the condition rather than trusted.
pub(crate) fn shape_mismatch(op: crate::definition::Op, attribute: &str) -> ConditionError {
    (
        format!("operator '{op}' can't be applied to '{attribute}' with the values given"),
        None,
    )
}

/// A column reference by exact name (no parsing of dots or case folding).
pub(crate) fn col_exact(name: &str) -> Expr {
    Expr::Column(datafusion::prelude::Column::new_unqualified(name))
}

/// A comparison of a column with one bound, as the exact (decimal, temporal) compilers
/// build them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `=`
    Eq,
}

/// The executable form of a set of groups.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    /// Distinct condition expressions; each is boolean and never NULL.
    pub conditions: Vec<Expr>,
    /// Distinct per-customer event aggregates; number `i` is column [`events::alias`]`(i)`
    /// of the customers table once `evaluate::events::attach` has joined them.
    pub events: Vec<EventAggregate>,
    /// Groups in dependency order: a group only references groups before it.
    pub groups: Vec<CompiledGroup>,
}

/// One group's formulas.
#[derive(Debug, Clone)]
pub(crate) struct CompiledGroup {
    /// The definition it came from.
    pub group: Group,
    /// OR of these.
    pub include: Vec<Formula>,
    /// minus the OR of these.
    pub exclude: Vec<Formula>,
}

/// One clause: AND or OR of terms.
#[derive(Debug, Clone)]
pub(crate) struct Formula {
    /// AND or OR.
    pub mode: Match,
    /// The terms.
    pub terms: Vec<Term>,
}

/// A term of a clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Term {
    /// `Compiled::conditions[i]`.
    Condition(usize),
    /// Membership of `Compiled::groups[index]`, or its complement.
    Group {
        /// Index into `Compiled::groups`.
        index: usize,
        /// `not in group`.
        negated: bool,
    },
}

impl Compiled {
    /// The index of a group by id.
    pub(crate) fn group_index(&self, id: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.group.id == id)
    }

    /// The groups named in `wanted` and every group they reference, with just the
    /// conditions and event aggregates those use: what `run --only` and `size` evaluate,
    /// taken from the one compilation of every group. Unknown names are an error with a
    /// suggestion.
    pub(crate) fn select(&self, wanted: &[String]) -> crate::Result<Compiled> {
        let mut keep = vec![false; self.groups.len()];
        let mut todo = Vec::new();
        for id in wanted {
            let Some(i) = self.group_index(id) else {
                let hint = did_you_mean(id, self.groups.iter().map(|g| g.group.id.as_str()))
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(crate::Error::UnknownGroup {
                    group: id.clone(),
                    hint,
                });
            };
            todo.push(i);
        }
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut keep[i], true) {
                continue;
            }
            for t in self.groups[i].formulas().flat_map(|f| &f.terms) {
                if let Term::Group { index, .. } = *t {
                    todo.push(index);
                }
            }
        }
        // New numbers of the kept groups, conditions and aggregates (old order kept).
        let group_number: Vec<Option<usize>> = keep
            .iter()
            .scan(0, |next, &k| {
                Some(k.then(|| std::mem::replace(next, *next + 1)))
            })
            .collect();
        let mut used = vec![false; self.conditions.len()];
        for (g, _) in self.groups.iter().zip(&keep).filter(|(_, k)| **k) {
            for t in g.formulas().flat_map(|f| &f.terms) {
                if let Term::Condition(c) = *t {
                    used[c] = true;
                }
            }
        }
        let condition_number: Vec<Option<usize>> = used
            .iter()
            .scan(0, |next, &u| {
                Some(u.then(|| std::mem::replace(next, *next + 1)))
            })
            .collect();
        let aliases: HashMap<String, usize> = (0..self.events.len())
            .map(|i| (events::alias(i), i))
            .collect();
        let mut event_used = vec![false; self.events.len()];
        for (c, _) in self.conditions.iter().zip(&used).filter(|(_, u)| **u) {
            for column in c.column_refs() {
                if let Some(&e) = aliases.get(&column.name) {
                    event_used[e] = true;
                }
            }
        }
        let event_number: Vec<Option<usize>> = event_used
            .iter()
            .scan(0, |next, &u| {
                Some(u.then(|| std::mem::replace(next, *next + 1)))
            })
            .collect();
        let renumber_events = |expr: &Expr| -> Expr {
            use datafusion::common::tree_node::{Transformed, TreeNode};
            expr.clone()
                .transform(|e| match &e {
                    Expr::Column(c) => match aliases.get(&c.name).and_then(|&i| event_number[i]) {
                        Some(n) => Ok(Transformed::yes(Expr::Column(
                            datafusion::prelude::Column::new_unqualified(events::alias(n)),
                        ))),
                        None => Ok(Transformed::no(e)),
                    },
                    _ => Ok(Transformed::no(e)),
                })
                .map(|t| t.data)
                .unwrap_or_else(|_| expr.clone())
        };
        let renumber = |f: &Formula| Formula {
            mode: f.mode,
            terms: f
                .terms
                .iter()
                .filter_map(|t| match *t {
                    Term::Condition(c) => condition_number[c].map(Term::Condition),
                    Term::Group { index, negated } => {
                        group_number[index].map(|index| Term::Group { index, negated })
                    }
                })
                .collect(),
        };
        Ok(Compiled {
            conditions: self
                .conditions
                .iter()
                .zip(&used)
                .filter(|(_, u)| **u)
                .map(|(c, _)| renumber_events(c))
                .collect(),
            events: self
                .events
                .iter()
                .zip(&event_used)
                .filter(|(_, u)| **u)
                .map(|(e, _)| e.clone())
                .collect(),
            groups: self
                .groups
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(g, _)| CompiledGroup {
                    group: g.group.clone(),
                    include: g.include.iter().map(renumber).collect(),
                    exclude: g.exclude.iter().map(renumber).collect(),
                })
                .collect(),
        })
    }
}

impl CompiledGroup {
    /// Its include clauses, then its exclude clauses.
    pub(crate) fn formulas(&self) -> impl Iterator<Item = &Formula> {
        self.include.iter().chain(&self.exclude)
    }
}

/// What definitions are checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Environment<'a> {
    /// The customers table's schema.
    pub schema: &'a Schema,
    /// The customer id column.
    pub id_column: &'a str,
    /// The event tables the definitions name (resolved).
    pub events: &'a EventTables,
    /// The evaluation time.
    pub as_of: DateTime<Utc>,
}

/// Compiles `groups` against the customers schema and event tables. Returns everything
/// that compiled and every problem found (errors and nothing else; lints are separate).
pub(crate) fn compile(groups: &[Group], env: &Environment<'_>) -> (Compiled, Vec<Problem>) {
    let (schema, as_of) = (env.schema, env.as_of);
    let mut problems = Vec::new();
    let order = dependency_order(groups, &mut problems);
    let position: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| (groups[i].id.as_str(), pos))
        .collect();
    let df_schema =
        DFSchema::try_from(schema.clone()).expect("a Parquet schema is a valid DFSchema");
    let mut compiler = Compiler {
        schema,
        df_schema: &df_schema,
        as_of,
        conditions: Interner::default(),
        event_tables: env.events,
        id_type: schema
            .field_with_name(env.id_column)
            .ok()
            .map(|f| f.data_type().clone()),
        events: Vec::new(),
        events_seen: HashMap::new(),
        problems: &mut problems,
        group_position: &position,
        group_ids: groups.iter().map(|g| g.id.as_str()).collect(),
    };
    let mut compiled_groups = Vec::new();
    for &i in &order {
        let group = &groups[i];
        let include = group.include.iter().map(|c| compiler.clause(c)).collect();
        let exclude = group.exclude.iter().map(|c| compiler.clause(c)).collect();
        compiled_groups.push(CompiledGroup {
            group: group.clone(),
            include,
            exclude,
        });
    }
    let conditions = compiler.conditions.exprs;
    let events = compiler.events;
    (
        Compiled {
            conditions,
            events,
            groups: compiled_groups,
        },
        problems,
    )
}

/// Compiles one ad-hoc SQL predicate (`cohort size --where`).
pub(crate) fn compile_where(
    sql: &str,
    schema: &Schema,
    as_of: DateTime<Utc>,
) -> crate::Result<Expr> {
    let df_schema = DFSchema::try_from(schema.clone())?;
    sql::compile(sql, &df_schema, as_of)
        .map(Expr::is_true)
        .map_err(|(msg, hint)| {
            let hint = hint.map(|h| format!("; {h}")).unwrap_or_default();
            crate::Error::Where { message: msg, hint }
        })
}

/// Expressions numbered in order of first appearance, each once.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    pub(crate) exprs: Vec<Expr>,
    seen: HashMap<Expr, usize>,
}

impl Interner {
    /// `exprs` numbered as they stand (position n is number n).
    pub(crate) fn new(exprs: &[Expr]) -> Interner {
        let mut seen = HashMap::new();
        for (i, expr) in exprs.iter().enumerate() {
            seen.entry(expr.clone()).or_insert(i);
        }
        Interner {
            exprs: exprs.to_vec(),
            seen,
        }
    }

    /// The number of `expr`, given the next one if it is new.
    pub(crate) fn intern(&mut self, expr: Expr) -> usize {
        if let Some(&i) = self.seen.get(&expr) {
            return i;
        }
        self.exprs.push(expr.clone());
        self.seen.insert(expr, self.exprs.len() - 1);
        self.exprs.len() - 1
    }
}

struct Compiler<'a> {
    schema: &'a Schema,
    df_schema: &'a DFSchema,
    as_of: DateTime<Utc>,
    conditions: Interner,
    problems: &'a mut Vec<Problem>,
    group_position: &'a HashMap<&'a str, usize>,
    group_ids: Vec<&'a str>,
    event_tables: &'a EventTables,
    id_type: Option<datafusion::arrow::datatypes::DataType>,
    events: Vec<EventAggregate>,
    events_seen: HashMap<EventAggregate, usize>,
}

impl Compiler<'_> {
    fn clause(&mut self, clause: &crate::definition::Clause) -> Formula {
        let terms = clause
            .conditions
            .iter()
            .filter_map(|c| match self.condition(&c.spec) {
                Ok(term) => Some(term),
                Err((message, hint)) => {
                    self.problems
                        .push(Problem::error(&c.at, message).with_hint(hint));
                    None
                }
            })
            .collect();
        Formula {
            mode: clause.mode,
            terms,
        }
    }

    fn condition(&mut self, spec: &ConditionSpec) -> Result<Term, ConditionError> {
        let expr = match spec {
            ConditionSpec::GroupRef { group, negated } => {
                return match self.group_position.get(group.as_str()) {
                    Some(&index) => Ok(Term::Group {
                        index,
                        negated: *negated,
                    }),
                    None => Err((
                        format!("unknown group '{group}'"),
                        did_you_mean(group, self.group_ids.iter().copied()),
                    )),
                };
            }
            ConditionSpec::Attribute(a) => {
                let Ok(field) = self.schema.field_with_name(&a.attribute) else {
                    let names = self.schema.fields().iter().map(|f| f.name().as_str());
                    return Err((
                        format!("unknown attribute '{}'", a.attribute),
                        did_you_mean(&a.attribute, names),
                    ));
                };
                attribute::compile(a, field.data_type(), self.as_of)?
            }
            ConditionSpec::Sql(text) => sql::compile(text, self.df_schema, self.as_of)?,
            ConditionSpec::Events(e) => {
                let (aggregate, mut comparison) =
                    events::compile(e, self.event_tables, self.id_type.as_ref(), self.as_of)?;
                let output = aggregate.output.clone();
                // Conditions on the same aggregate share one column of the scan.
                let next = self.events.len();
                let index = *self.events_seen.entry(aggregate.clone()).or_insert(next);
                if index == next {
                    self.events.push(aggregate);
                }
                comparison.attribute = events::alias(index);
                attribute::compile(&comparison, &output, self.as_of)?
            }
        };
        // Identical conditions in different groups are evaluated once.
        Ok(Term::Condition(self.conditions.intern(expr.is_true())))
    }
}

/// Orders groups so every group follows the groups it references; reports cycles.
fn dependency_order(groups: &[Group], problems: &mut Vec<Problem>) -> Vec<usize> {
    let index: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.as_str(), i))
        .collect();
    let references = |g: &Group| -> Vec<usize> {
        g.include
            .iter()
            .chain(&g.exclude)
            .flat_map(|c| &c.conditions)
            .filter_map(|c| match &c.spec {
                ConditionSpec::GroupRef { group, .. } => index.get(group.as_str()).copied(),
                _ => None,
            })
            .collect()
    };
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Open,
        Done,
    }
    let mut state = vec![State::New; groups.len()];
    let mut order = Vec::with_capacity(groups.len());
    let mut reported_cycle = false;
    for root in 0..groups.len() {
        // Iterative DFS: (node, next reference to visit).
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        if state[root] != State::New {
            continue;
        }
        state[root] = State::Open;
        stack.push((root, references(&groups[root])));
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) if state[next] == State::New => {
                    state[next] = State::Open;
                    let refs = references(&groups[next]);
                    stack.push((next, refs));
                }
                Some(next) if state[next] == State::Open => {
                    if !reported_cycle {
                        let start = stack.iter().position(|(n, _)| *n == next).unwrap();
                        let mut cycle: Vec<&str> = stack[start..]
                            .iter()
                            .map(|(n, _)| groups[*n].id.as_str())
                            .collect();
                        cycle.push(&groups[next].id);
                        let g = &groups[node];
                        let at = Location {
                            file: g.file.clone(),
                            group: g.id.clone(),
                            ..Default::default()
                        };
                        problems.push(Problem::error(
                            &at,
                            format!("group references form a cycle: {}", cycle.join(" -> ")),
                        ));
                        reported_cycle = true;
                    }
                }
                Some(_) => {}
                None => {
                    state[node] = State::Done;
                    order.push(node);
                    stack.pop();
                }
            }
        }
    }
    order
}
