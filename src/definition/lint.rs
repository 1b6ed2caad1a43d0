//! Lint warnings of SPEC §2.3: definitions that are valid but almost certainly not meant.

use super::{ConditionSpec, Group, Match, Op, Operand, Problem};

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
            for (i, condition) in clause.conditions.iter().enumerate() {
                if let ConditionSpec::Attribute(a) = &condition.spec {
                    if matches!(&a.operand, Operand::List(values) if values.is_empty()) {
                        warnings.push(Problem::warning(
                            &condition.at,
                            format!("empty value list for '{} {}'", a.attribute, a.op),
                        ));
                    }
                }
                if clause.conditions[..i]
                    .iter()
                    .any(|c| c.spec == condition.spec)
                {
                    warnings.push(Problem::warning(
                        &condition.at,
                        format!("duplicate condition '{}'", condition.spec),
                    ));
                }
            }
        }
        for id in &group.statics.include {
            if group.statics.exclude.contains(id) {
                let at = super::Location {
                    file: group.file.clone(),
                    group: group.id.clone(),
                    path: "static".into(),
                    line: None,
                    ..Default::default()
                };
                warnings.push(Problem::warning(
                    &at,
                    format!("id '{id}' is in both static include and exclude; exclude wins"),
                ));
            }
        }
    }
    warnings
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
