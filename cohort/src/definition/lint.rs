//! Lint warnings of SPEC §2.3: definitions that are valid but almost certainly not meant.

use std::collections::{HashMap, HashSet};

use super::{ConditionSpec, Group, IdLiteral, Match, Op, Operand, Problem};

/// Every lint warning over the given groups.
pub fn lint(groups: &[Group]) -> Vec<Problem> {
    let mut warnings = Vec::new();
    for group in groups {
        for clause in group.include.iter().chain(&group.exclude) {
            if clause.mode == Match::All {
                if let Some(attr) = contradicting_attribute(clause) {
                    warnings.push(Problem::warning(
                        &clause.at,
                        format!(
                            "clause can never match: '{attr} doesn't exist' is AND-ed with another condition on '{attr}', which is false for missing values"
                        ),
                    ).with_hint(Some("use match = \"any\" to mean 'either'".into())));
                }
            }
            // Linear: a clause may hold thousands of conditions.
            let mut seen: HashMap<String, Vec<&ConditionSpec>> = HashMap::new();
            for condition in &clause.conditions {
                if let ConditionSpec::Attribute(a) = &condition.spec {
                    if matches!(&a.operand, Operand::List(values) if values.is_empty()) {
                        warnings.push(Problem::warning(
                            &condition.at,
                            format!("empty value list for '{} {}'", a.attribute, a.op),
                        ));
                    }
                }
                let same = seen.entry(condition.spec.to_string()).or_default();
                if same.iter().any(|c| **c == condition.spec) {
                    warnings.push(Problem::warning(
                        &condition.at,
                        format!("duplicate condition '{}'", condition.spec),
                    ));
                } else {
                    same.push(&condition.spec);
                }
            }
        }
        warnings.extend(in_both_statics(group));
    }
    warnings
}

/// Ids in both static include and exclude: one warning per group, with a few examples
/// (a suppression list may hold millions of ids). Linear in the lists' lengths.
fn in_both_statics(group: &Group) -> Option<Problem> {
    let statics = &group.statics;
    if statics.include.is_empty() || statics.exclude.is_empty() {
        return None;
    }
    let excluded: HashSet<&IdLiteral> = statics.exclude.iter().collect();
    let mut both = statics.include.iter().filter(|id| excluded.contains(id));
    let examples: Vec<String> = both.by_ref().take(3).map(|id| format!("'{id}'")).collect();
    if examples.is_empty() {
        return None;
    }
    let count = examples.len() + both.count();
    let at = super::Location {
        file: group.file.clone(),
        group: group.id.clone(),
        path: "static".into(),
        line: None,
        ..Default::default()
    };
    let message = match count {
        1 => format!(
            "id {} is in both static include and exclude; exclude wins",
            examples[0]
        ),
        n => format!(
            "{n} ids are in both static include and exclude, e.g. {}; exclude wins",
            examples.join(", ")
        ),
    };
    Some(Problem::warning(&at, message))
}

/// An attribute that an AND clause requires to be both missing and tested for a value.
fn contradicting_attribute(clause: &super::Clause) -> Option<String> {
    let attributes = |pred: fn(Op) -> bool| {
        clause.conditions.iter().filter_map(move |c| match &c.spec {
            ConditionSpec::Attribute(a) if pred(a.op) => Some(a.attribute.as_str()),
            _ => None,
        })
    };
    let missing: Vec<&str> = attributes(|op| op == Op::NotExists).collect();
    attributes(|op| op != Op::NotExists)
        .find(|attr| missing.contains(attr))
        .map(str::to_string)
}
