//! Balanced AND / OR trees: a list of n terms becomes a tree of depth ⌈log2 n⌉, not a
//! left-deep chain of depth n.
//!
//! Every pass over an expression (type coercion, simplification, physical planning,
//! evaluation, `Drop`) recurses once per level. A 5,000-value `ends_with` list built by
//! `reduce(Expr::or)` is 5,000 levels deep and overflows a 2 MiB thread stack; balanced,
//! it is 13. AND and OR are associative in SQL's three-valued logic, so the answer is the
//! same.

use datafusion::logical_expr::Expr;

/// The OR of `terms`, balanced; `None` for no terms.
pub(crate) fn any(terms: Vec<Expr>) -> Option<Expr> {
    balanced(terms, Expr::or)
}

/// The AND of `terms`, balanced; `None` for no terms.
pub(crate) fn all(terms: Vec<Expr>) -> Option<Expr> {
    balanced(terms, Expr::and)
}

/// Combines `terms` pairwise, level by level (order preserved), without recursion.
pub(crate) fn balanced<T>(mut terms: Vec<T>, combine: impl Fn(T, T) -> T) -> Option<T> {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut iter = terms.into_iter();
        while let Some(left) = iter.next() {
            next.push(match iter.next() {
                Some(right) => combine(left, right),
                None => left,
            });
        }
        terms = next;
    }
    terms.pop()
}

/// How many levels deep `expr` is along AND / OR / NOT (counted without recursion).
#[cfg(test)]
pub(crate) fn boolean_depth(expr: &Expr) -> usize {
    use datafusion::logical_expr::Operator;
    let mut deepest = 0;
    let mut stack = vec![(expr, 1usize)];
    while let Some((e, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        match e {
            Expr::BinaryExpr(b) if matches!(b.op, Operator::And | Operator::Or) => {
                stack.push((&b.left, depth + 1));
                stack.push((&b.right, depth + 1));
            }
            Expr::Not(inner) | Expr::IsTrue(inner) => stack.push((inner, depth + 1)),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    #[test]
    fn balanced_trees_are_logarithmically_deep() {
        // (terms, depth)
        for (n, depth) in [(1usize, 1usize), (2, 2), (3, 3), (4, 3), (5, 4), (5000, 14)] {
            let terms = (0..n).map(|i| col("x").eq(lit(i as i64))).collect();
            let tree = any(terms).unwrap();
            assert_eq!(boolean_depth(&tree), depth, "{n} terms");
        }
        assert!(all(Vec::new()).is_none());
    }

    #[test]
    fn balancing_keeps_the_terms_in_order() {
        let joined = balanced((1..=7).map(|i| i.to_string()).collect(), |a, b| {
            format!("({a} {b})")
        });
        assert_eq!(joined.unwrap(), "(((1 2) (3 4)) ((5 6) 7))");
    }
}
