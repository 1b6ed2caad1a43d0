//! Typing a condition's shape (which keys, how many values), once, into the model.

use super::keys::{value_shapes, Source};
use super::raw::{RawClause, RawValue, RawValues};
use super::*;

pub(super) fn type_clauses(
    clauses: Vec<RawClause>,
    kind: &str,
    file_at: &Location,
    source: Source<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<Clause> {
    let written = source.clauses(kind);
    let mut typed = Vec::new();
    for (i, clause) in clauses.into_iter().enumerate() {
        let node = written.get(i);
        let clause_at = Location {
            path: format!("{kind}[{i}]"),
            ..file_at.clone()
        }
        .at(source.position(node));
        let mode = match clause.mode.as_deref().map(|m| m.trim().to_lowercase()) {
            None => Match::All,
            Some(m) if m == "all" => Match::All,
            Some(m) if m == "any" => Match::Any,
            Some(m) => {
                let written = node.and_then(|n| n.get("match")).map(|e| &e.value);
                problems.push(Problem::error(
                    &clause_at.at(source.position(written).or(source.position(node))),
                    format!("invalid match '{m}': expected 'all' or 'any'"),
                ));
                Match::All
            }
        };
        let condition_nodes = node
            .and_then(|n| n.get("conditions"))
            .map_or(&[][..], |e| e.value.items());
        let mut conditions = Vec::new();
        for (j, raw) in clause.conditions.into_iter().enumerate() {
            let node = condition_nodes.get(j);
            let at = Location {
                path: format!("{kind}[{i}].conditions[{j}]"),
                ..file_at.clone()
            }
            .at(source.position(node));
            // A value of the wrong shape leaves nothing to type; an unknown key (reported
            // by `keys`) does not stop the rest of the condition from being checked.
            let shapes = value_shapes(&raw, node, source, &at);
            if !shapes.is_empty() {
                problems.extend(shapes);
                continue;
            }
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
    let one = match &raw.value {
        Some(RawValue::One(v)) => Some(v),
        _ => None,
    };
    let list = match &raw.values {
        Some(RawValues::List(vs)) => &vs[..],
        Some(RawValues::One(v)) => std::slice::from_ref(v),
        _ => &[],
    };
    let literals = one
        .into_iter()
        .chain(list)
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
/// Unknown keys are not its business (serde skips them; the loader reports them).
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
        (Some(RawValue::One(v)), None) => vec![v],
        (None, Some(RawValues::List(vs))) => vs,
        (None, None) => Vec::new(),
        // The loader reports these where they are written (`keys::value_shapes`).
        (Some(_), None) => {
            return Err(err(
                "'value' takes one string, number, boolean or date".into()
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "'values' takes a list of strings, numbers, booleans or dates".into(),
            ))
        }
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
    let count = values.len();
    let operand = match op.arity() {
        Arity::None => values.is_empty().then_some(Operand::None),
        Arity::One => <[Literal; 1]>::try_from(values)
            .ok()
            .map(|[v]| Operand::One(v)),
        Arity::Two => <[Literal; 2]>::try_from(values)
            .ok()
            .map(|[lo, hi]| Operand::Range(lo, hi)),
        Arity::List => Some(Operand::List(values)),
    };
    let Some(operand) = operand else {
        let wanted = match op.arity() {
            Arity::None => "no value",
            Arity::One => "exactly one value",
            Arity::Two => "two values [low, high]",
            Arity::List => "a list of values",
        };
        return Err(err(format!(
            "'{attribute} {op}' takes {wanted}, got {count}"
        )));
    };
    let ignore_case = raw.ignore_case.unwrap_or(false);
    if ignore_case && !op.accepts_ignore_case() {
        return Err(err(format!("ignore_case does not apply to '{op}'")));
    }
    Ok(ConditionSpec::Attribute(AttributeCondition {
        attribute,
        op,
        operand,
        ignore_case,
    }))
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
            Problem::error(at, format!("unknown aggregate '{aggregate_text}'"))
                .with_hint(did_you_mean(aggregate_text, Aggregate::all_spellings())),
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
    let within_last = match &raw.within_last {
        None => None,
        Some(text) => Some(Window::parse(text).ok_or_else(|| {
            Box::new(
                Problem::error(at, format!("bad window within_last = '{text}'")).with_hint(Some(
                    "write a whole number followed by h, d or w, e.g. '90d'".into(),
                )),
            )
        })?),
    };
    for (key, bound) in [("before", &raw.before), ("after", &raw.after)] {
        if let Some(value) = bound {
            if super::parse_instant(value).is_none() {
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
        within_last,
        before: raw.before,
        after: raw.after,
        comparison,
    })
}
