//! Group definition files → typed groups: parsing (TOML/JSON), shape checks, problems, lints.
//!
//! Nothing here knows the customers schema; checks against it happen in `compile`.

mod aggregates;
mod keys;
mod lint;
mod load;
mod model;
pub mod ops;
mod problems;
pub mod raw;
pub mod spans;
mod split;
mod typing;
mod vocabulary;
mod window;

pub use aggregates::{Aggregate, AggregateInfo, Reads, AGGREGATES};
pub use lint::lint;
pub use load::{definition_files, is_valid_group_id, load_dir, parse_definition_json, parse_group};
pub use model::*;
pub use ops::{Arity, Evaluator, Family, Op, Operator, OPERATORS};
pub use problems::{did_you_mean, Location, Position, Problem, Severity};
pub use raw::{IdLiteral, Literal, RawCondition, RawValue, RawValues};
pub use split::{Arm, Split, SplitProblem, WrittenArm};
pub use typing::type_condition;
pub use vocabulary::vocabulary;
pub use window::{as_of_nanos, check_as_of, parse_instant, OutOfRange, Window};

#[cfg(test)]
mod tests {
    use std::path::Path;

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
