//! `/api/v1/parse_query`: a PromQL syntax tree as JSON, in the shape upstream's
//! `translateAST` gives it (what Prometheus's UI tree view reads).

use pyrite_core::labels::Matcher;
use pyrite_core::promql::ast::{AggregateGrouping, At, Expr, Extension, Grouping, MatchOn, ValueType, VectorSelector};
use pyrite_core::promql::functions::Variadic;
use pyrite_core::value::format_value;
use serde_json::{json, Value};

fn value_type(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::Vector => "vector",
        ValueType::Matrix => "matrix",
        ValueType::String => "string",
    }
}

fn matchers(ms: &[Matcher]) -> Value {
    Value::Array(ms.iter().map(|m| json!({"type": m.op.to_string(), "name": m.name, "value": m.value})).collect())
}

/// `timestamp` (ms) and `startOrEnd` of an `@` modifier.
fn at(at: &Option<At>) -> (Value, Value) {
    match at {
        None => (Value::Null, Value::Null),
        Some(At::Timestamp(t)) => (json!(t), Value::Null),
        Some(At::Start) => (Value::Null, json!("start")),
        Some(At::End) => (Value::Null, json!("end")),
    }
}

fn selector(vs: &VectorSelector, kind: &str) -> Value {
    let (timestamp, start_or_end) = at(&vs.at);
    json!({
        "type": kind,
        "name": vs.name.clone().unwrap_or_default(),
        "offset": vs.offset,
        "matchers": matchers(&vs.matchers),
        "timestamp": timestamp,
        "startOrEnd": start_or_end,
        "anchored": vs.extension == Some(Extension::Anchored),
        "smoothed": vs.extension == Some(Extension::Smoothed),
    })
}

pub fn translate(e: &Expr) -> Value {
    match e {
        Expr::Number(n) => json!({"type": "numberLiteral", "val": format_value(*n)}),
        Expr::String(s) => json!({"type": "stringLiteral", "val": s}),
        Expr::Paren(x) => json!({"type": "parenExpr", "expr": translate(x)}),
        Expr::Neg(x) => json!({"type": "unaryExpr", "op": "-", "expr": translate(x)}),
        Expr::VectorSelector(vs) => selector(vs, "vectorSelector"),
        Expr::MatrixSelector { selector: vs, range } => {
            let mut v = selector(vs, "matrixSelector");
            v["range"] = json!(range);
            v
        }
        Expr::Subquery { expr, range, step, offset, at: modifier, .. } => {
            let (timestamp, start_or_end) = at(modifier);
            json!({
                "type": "subquery",
                "expr": translate(expr),
                "range": range,
                "offset": offset,
                "step": step.unwrap_or(0),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::Binary { op, lhs, rhs, modifiers } => {
            let vectors = lhs.value_type() == ValueType::Vector && rhs.value_type() == ValueType::Vector;
            let matching = if vectors {
                let (labels, on) = match &modifiers.matching {
                    Some(MatchOn::On(l)) => (l.clone(), true),
                    Some(MatchOn::Ignoring(l)) => (l.clone(), false),
                    None => (Vec::new(), false),
                };
                let (card, include) = match &modifiers.group {
                    _ if op.is_set() => ("many-to-many", Vec::new()),
                    Some(Grouping::Left(l)) => ("many-to-one", l.clone()),
                    Some(Grouping::Right(l)) => ("one-to-many", l.clone()),
                    None => ("one-to-one", Vec::new()),
                };
                json!({"card": card, "labels": labels, "on": on, "include": include})
            } else {
                Value::Null
            };
            json!({
                "type": "binaryExpr",
                "op": op.symbol(),
                "lhs": translate(lhs),
                "rhs": translate(rhs),
                "matching": matching,
                "bool": modifiers.return_bool,
            })
        }
        Expr::Aggregate { op, expr, param, grouping, .. } => {
            let (labels, without) = match grouping {
                AggregateGrouping::By(l) => (l.clone(), false),
                AggregateGrouping::Without(l) => (l.clone(), true),
            };
            json!({
                "type": "aggregation",
                "op": op.name(),
                "expr": translate(expr),
                "param": param.as_deref().map(translate),
                "grouping": labels,
                "without": without,
            })
        }
        Expr::Call { func, args, .. } => json!({
            "type": "call",
            "func": {
                "name": func.name,
                "argTypes": func.args.iter().map(|t| value_type(*t)).collect::<Vec<_>>(),
                "variadic": match func.variadic { Variadic::None => 0, Variadic::OptionalLast => 1, Variadic::Repeat => -1 },
                "returnType": value_type(func.returns),
            },
            "args": args.iter().map(translate).collect::<Vec<_>>(),
        }),
    }
}
