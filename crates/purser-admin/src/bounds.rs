//! Bounds on every dimension of a GraphQL request, checked before async-graphql parses or
//! validates it, so that the work done on any request is linear in a small bounded size.
//!
//! async-graphql's parser is recursive (a document nested a few hundred brackets deep
//! overflows a worker's stack, which aborts the process), and its validation expands fragment
//! spreads without memoising them (a fragment spreading another twice, thirty levels down, is
//! a billion fields), synchronously, where no request timeout can interrupt it. So the handler
//! checks, in this order, each step linear in what the previous one bounded:
//!
//! 1. [`check_json_nesting`]: the body's JSON nesting, before serde_json reads it.
//! 2. [`check_json_values`]: how many values `variables` and `extensions` hold.
//! 3. [`check_document_text`]: the document's nesting of `{`, `[` and `(`, its tokens and its
//!    bytes, from a lexer of its own ([`Lexer`]) that skips strings and comments as the parser
//!    does. The parser then never recurses deeper than `max_nesting`.
//! 4. [`check_document`]: the parsed document: operations, fragments, directives, the nesting
//!    of input values, and the fields and aliases once fragments are expanded, each fragment's
//!    expansion counted once (memoised, in saturating arithmetic) and fragment cycles refused.
//!
//! After these, async-graphql's parse and validation are linear in the bounded sizes, and
//! execution is async, so the request timeout applies to it.

mod lexer;

use std::collections::{HashMap, HashSet};

use async_graphql::Positioned;
use async_graphql::parser::types::{
    Directive, ExecutableDocument, Selection, SelectionSet, VariableDefinition,
};
use async_graphql_value::{ConstValue, Value};
use purser_domain::ErrorCode;

use crate::GraphqlLimits;
use lexer::{Lexer, Token};

/// A request refused for its shape: a code from the table and a message naming the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn too_large(message: String) -> Self {
        Self {
            code: ErrorCode::QueryTooLarge,
            message,
        }
    }

    fn too_deep(message: String) -> Self {
        Self {
            code: ErrorCode::QueryTooDeep,
            message,
        }
    }
}

/// Refuses a body whose JSON nests deeper than the variables may, plus one for the request
/// object itself. A scan of brackets outside strings: it never recurses, and it answers
/// `query_too_large` where serde_json (whose own limit is 128) would answer a parse error.
/// Malformed JSON passes, for serde_json to describe.
pub(crate) fn check_json_nesting(body: &[u8], limits: &GraphqlLimits) -> Result<(), Refusal> {
    let max = limits.max_variables_depth.saturating_add(1);
    let mut nesting = 0usize;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        match byte {
            b'"' => {
                at += 1;
                while let Some(&byte) = body.get(at) {
                    at += match byte {
                        b'"' => break,
                        b'\\' => 2,
                        _ => 1,
                    };
                }
            }
            b'{' | b'[' => {
                nesting += 1;
                if nesting > max {
                    return Err(Refusal::too_large(format!(
                        "the request's JSON nests deeper than its variables may: {} levels \
                         (graphql.max_variables_depth)",
                        limits.max_variables_depth
                    )));
                }
            }
            b'}' | b']' => nesting = nesting.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// Refuses `variables` and `extensions` holding more than `max_variables_nodes` JSON values
/// between them (every object, array and scalar counts one). Iterative, and counting each
/// array's or object's members before taking them on, so a huge one is not copied.
pub(crate) fn check_json_values<'a>(
    values: impl IntoIterator<Item = &'a serde_json::Value>,
    limits: &GraphqlLimits,
) -> Result<(), Refusal> {
    let within = |count: usize| count <= limits.max_variables_nodes;
    let mut pending: Vec<&serde_json::Value> = values.into_iter().collect();
    let mut count = pending.len();
    while within(count) {
        match pending.pop() {
            None => return Ok(()),
            Some(serde_json::Value::Array(items)) => {
                count = count.saturating_add(items.len());
                if within(count) {
                    pending.extend(items);
                }
            }
            Some(serde_json::Value::Object(members)) => {
                count = count.saturating_add(members.len());
                if within(count) {
                    pending.extend(members.values());
                }
            }
            Some(_) => {}
        }
    }
    Err(Refusal::too_large(format!(
        "the variables hold more than {} values (graphql.max_variables_nodes)",
        limits.max_variables_nodes
    )))
}

/// Refuses a document nesting `{`, `[` and `(` deeper than `max_nesting`, with more than
/// `max_tokens` tokens, or longer than `max_document_bytes`. Only the first
/// `max_document_bytes` are read, stopping at the first limit passed, so a document nested too
/// deep is refused as such however long it is.
pub(crate) fn check_document_text(text: &str, limits: &GraphqlLimits) -> Result<(), Refusal> {
    let allowed = &text.as_bytes()[..text.len().min(limits.max_document_bytes)];
    let mut tokens = 0usize;
    let mut nesting = 0usize;
    for token in Lexer::new(allowed) {
        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(Refusal::too_large(format!(
                "the query has more than {} tokens (graphql.max_tokens)",
                limits.max_tokens
            )));
        }
        match token {
            Token::Punctuator(b'{' | b'[' | b'(') => {
                nesting += 1;
                if nesting > limits.max_nesting {
                    return Err(Refusal::too_deep(format!(
                        "the query nests brackets deeper than {} (graphql.max_nesting)",
                        limits.max_nesting
                    )));
                }
            }
            // An unbalanced closing bracket is the parser's to report; it stops there.
            Token::Punctuator(b'}' | b']' | b')') => nesting = nesting.saturating_sub(1),
            _ => {}
        }
    }
    if text.len() > limits.max_document_bytes {
        return Err(Refusal::too_large(format!(
            "the query is longer than {} bytes (graphql.max_document_bytes)",
            limits.max_document_bytes
        )));
    }
    Ok(())
}

/// Refuses a parsed document over the limits on operations, fragments, directives, the nesting
/// of input values, or fields and aliases once fragments are expanded; refuses fragment
/// cycles (as the validator would, but without expanding them first).
///
/// Linear in the document: each selection is visited once, and each fragment's expansion is
/// counted once and remembered, so a fragment spread twice at each of thirty levels costs
/// thirty sums, not a billion visits.
pub(crate) fn check_document(
    document: &ExecutableDocument,
    limits: &GraphqlLimits,
) -> Result<(), Refusal> {
    let operations = document.operations.iter().count();
    if operations > limits.max_operations {
        return Err(Refusal::too_large(format!(
            "the query has more than {} operations (graphql.max_operations)",
            limits.max_operations
        )));
    }
    if document.fragments.len() > limits.max_fragments {
        return Err(Refusal::too_large(format!(
            "the query has more than {} fragments (graphql.max_fragments)",
            limits.max_fragments
        )));
    }

    // What each definition writes itself, walking every selection once.
    let mut walk = Walk::default();
    let mut operation_shapes = Vec::with_capacity(operations);
    for (_, operation) in document.operations.iter() {
        let operation = &operation.node;
        walk.directives(&operation.directives);
        walk.variable_definitions(&operation.variable_definitions);
        operation_shapes.push(walk.selection_set(&operation.selection_set));
    }
    let mut fragment_shapes = HashMap::with_capacity(document.fragments.len());
    for (name, fragment) in &document.fragments {
        walk.directives(&fragment.node.directives);
        fragment_shapes.insert(
            name.as_str(),
            walk.selection_set(&fragment.node.selection_set),
        );
    }
    if walk.directives > limits.max_directives {
        return Err(Refusal::too_large(format!(
            "the query has more than {} directives (graphql.max_directives)",
            limits.max_directives
        )));
    }
    if walk.input_depth > limits.max_input_depth {
        return Err(Refusal::too_deep(format!(
            "an input value nests lists or objects deeper than {} (graphql.max_input_depth)",
            limits.max_input_depth
        )));
    }

    // What each fragment selects once expanded; the operations' totals from those.
    let expanded = expand_fragments(&fragment_shapes)?;
    let mut total = Counts::default();
    for shape in &operation_shapes {
        total = total.plus(shape.own);
        for spread in &shape.spreads {
            if let Some(counts) = expanded.get(spread) {
                total = total.plus(*counts);
            }
        }
    }
    // An unused fragment (which the validator refuses) is still walked by it: bound it too.
    let largest_fragment = expanded.values().fold(Counts::default(), |a, b| Counts {
        fields: a.fields.max(b.fields),
        aliases: a.aliases.max(b.aliases),
    });
    let fields = total.fields.max(largest_fragment.fields);
    if fields > limits.max_fields as u64 {
        return Err(Refusal::too_large(format!(
            "the query selects more than {} fields once fragments are expanded \
             (graphql.max_fields)",
            limits.max_fields
        )));
    }
    let aliases = total.aliases.max(largest_fragment.aliases);
    if aliases > limits.max_aliases as u64 {
        return Err(Refusal::too_large(format!(
            "the query has more than {} aliases once fragments are expanded \
             (graphql.max_aliases)",
            limits.max_aliases
        )));
    }
    Ok(())
}

/// Fields and aliases, in saturating arithmetic: an expansion may exceed any integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    fields: u64,
    aliases: u64,
}

impl Counts {
    fn plus(self, other: Counts) -> Counts {
        Counts {
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
        }
    }
}

/// What one operation or fragment writes itself: its own fields and aliases (inline fragments
/// included), and the fragments it spreads, once per spread.
#[derive(Debug, Default)]
struct Shape<'a> {
    own: Counts,
    spreads: Vec<&'a str>,
}

/// Counts over the whole document, gathered while shapes are taken.
#[derive(Default)]
struct Walk {
    directives: usize,
    input_depth: usize,
}

impl Walk {
    fn selection_set<'a>(&mut self, selection_set: &'a Positioned<SelectionSet>) -> Shape<'a> {
        let mut shape = Shape::default();
        self.selections(selection_set, &mut shape);
        shape
    }

    /// Recursive, but only as deep as the document nests, which its text check bounded.
    fn selections<'a>(
        &mut self,
        selection_set: &'a Positioned<SelectionSet>,
        shape: &mut Shape<'a>,
    ) {
        for selection in &selection_set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    shape.own.fields = shape.own.fields.saturating_add(1);
                    if field.alias.is_some() {
                        shape.own.aliases = shape.own.aliases.saturating_add(1);
                    }
                    for (_, value) in &field.arguments {
                        self.input_depth = self.input_depth.max(value_depth(&value.node));
                    }
                    self.directives(&field.directives);
                    self.selections(&field.selection_set, shape);
                }
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.node.directives);
                    shape.spreads.push(spread.node.fragment_name.node.as_str());
                }
                Selection::InlineFragment(inline) => {
                    self.directives(&inline.node.directives);
                    self.selections(&inline.node.selection_set, shape);
                }
            }
        }
    }

    fn directives(&mut self, directives: &[Positioned<Directive>]) {
        self.directives = self.directives.saturating_add(directives.len());
        for directive in directives {
            for (_, value) in &directive.node.arguments {
                self.input_depth = self.input_depth.max(value_depth(&value.node));
            }
        }
    }

    fn variable_definitions(&mut self, definitions: &[Positioned<VariableDefinition>]) {
        for definition in definitions {
            self.directives(&definition.node.directives);
            if let Some(default) = &definition.node.default_value {
                self.input_depth = self.input_depth.max(const_value_depth(&default.node));
            }
        }
    }
}

/// How many lists and objects `value` nests: `1` is 0, `[1]` is 1, `{a: [1]}` is 2.
fn value_depth(value: &Value) -> usize {
    match value {
        Value::List(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Object(members) => 1 + members.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn const_value_depth(value: &ConstValue) -> usize {
    match value {
        ConstValue::List(items) => 1 + items.iter().map(const_value_depth).max().unwrap_or(0),
        ConstValue::Object(members) => {
            1 + members.values().map(const_value_depth).max().unwrap_or(0)
        }
        _ => 0,
    }
}

/// Each fragment's fields and aliases once expanded, every fragment counted once: a
/// depth-first walk of the spread graph with an explicit stack (no recursion on input), each
/// fragment entered once and each spread followed once. A spread of an unknown fragment counts
/// nothing (the validator reports it); a spread reaching a fragment still being expanded is a
/// cycle, refused.
fn expand_fragments<'s, 'a>(
    shapes: &'s HashMap<&'a str, Shape<'a>>,
) -> Result<HashMap<&'a str, Counts>, Refusal> {
    /// A fragment being expanded: its spreads, the next one to follow, and its sum so far.
    struct Open<'s, 'a> {
        name: &'a str,
        spreads: &'s [&'a str],
        next: usize,
        sum: Counts,
    }
    fn open<'s, 'a>(name: &'a str, shape: &'s Shape<'a>) -> Open<'s, 'a> {
        Open {
            name,
            spreads: &shape.spreads,
            next: 0,
            sum: shape.own,
        }
    }
    let mut expanded: HashMap<&'a str, Counts> = HashMap::with_capacity(shapes.len());
    let mut in_progress: HashSet<&'a str> = HashSet::new();
    let mut stack: Vec<Open<'s, 'a>> = Vec::new();
    let mut roots: Vec<(&&'a str, &'s Shape<'a>)> = shapes.iter().collect();
    roots.sort_unstable_by_key(|(name, _)| **name);
    for (&root, shape) in roots {
        if expanded.contains_key(root) {
            continue;
        }
        stack.push(open(root, shape));
        in_progress.insert(root);
        while let Some(top) = stack.last_mut() {
            if let Some(&target) = top.spreads.get(top.next) {
                top.next += 1;
                if let Some(counts) = expanded.get(target) {
                    top.sum = top.sum.plus(*counts);
                } else if in_progress.contains(target) {
                    return Err(Refusal {
                        code: ErrorCode::GraphqlValidationFailed,
                        message: format!("the fragment `{target}` spreads itself"),
                    });
                } else if let Some((&target, shape)) = shapes.get_key_value(target) {
                    stack.push(open(target, shape));
                    in_progress.insert(target);
                }
                continue;
            }
            // Every spread followed: the fragment is done, and counts in the one spreading it.
            let (name, sum) = (top.name, top.sum);
            stack.pop();
            in_progress.remove(name);
            expanded.insert(name, sum);
            if let Some(parent) = stack.last_mut() {
                parent.sum = parent.sum.plus(sum);
            }
        }
    }
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn limits() -> GraphqlLimits {
        GraphqlLimits::default()
    }

    fn document(text: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(text).expect("the test document parses")
    }

    fn check(text: &str) -> Result<(), Refusal> {
        check_document_text(text, &limits())?;
        check_document(&document(text), &limits())
    }

    fn code(result: Result<(), Refusal>) -> &'static str {
        result.map_or_else(|refusal| refusal.code.as_str(), |()| "ok")
    }

    #[test]
    fn nesting_counts_brackets_outside_strings_only() {
        let limits = GraphqlLimits {
            max_nesting: 3,
            ..limits()
        };
        assert!(check_document_text("{ a(b: [1]) }", &limits).is_ok());
        assert!(check_document_text(r#"{ a(b: "[[[[[[{{{{") }"#, &limits).is_ok());
        assert!(check_document_text("{ a(b: \"\"\"[[[[\"\"\") } # [[[[", &limits).is_ok());
        let refusal = check_document_text("{ a(b: [[1]]) }", &limits).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::QueryTooDeep);
        assert!(refusal.message.contains("3"), "{}", refusal.message);
        assert!(
            refusal.message.contains("graphql.max_nesting"),
            "{}",
            refusal.message
        );
        // Siblings do not add up.
        assert!(check_document_text("{ a { b } c { d } e(f: [1], g: [2]) }", &limits).is_ok());
    }

    #[test]
    fn size_and_tokens_are_bounded() {
        let limits = GraphqlLimits {
            max_document_bytes: 20,
            max_tokens: 5,
            ..limits()
        };
        assert!(check_document_text("{ a b c }", &limits).is_ok());
        let refusal = check_document_text("{ a b c d }", &limits).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::QueryTooLarge);
        assert!(refusal.message.contains("graphql.max_tokens"));
        let refusal =
            check_document_text(&format!("{{ a }} #{}", "x".repeat(20)), &limits).unwrap_err();
        assert!(refusal.message.contains("graphql.max_document_bytes"));
    }

    #[test]
    fn the_text_check_stops_at_the_first_limit_passed() {
        // A megabyte of brackets is refused at the 33rd, as too deep rather than too long.
        let deep = "[".repeat(1 << 20);
        let started = Instant::now();
        assert_eq!(
            check_document_text(&deep, &limits()).unwrap_err().code,
            ErrorCode::QueryTooDeep
        );
        assert!(started.elapsed() < Duration::from_millis(100));
        // Nesting past the size limit is not read: the document is too long.
        let late = format!("{}{}", " ".repeat(64 * 1024), "[".repeat(100));
        let refusal = check_document_text(&late, &limits()).unwrap_err();
        assert!(refusal.message.contains("graphql.max_document_bytes"));
        // A prefix cut inside a character lexes.
        let limits = GraphqlLimits {
            max_document_bytes: 3,
            ..limits()
        };
        assert!(check_document_text("{é}", &limits).is_err());
    }

    /// Fragments `F0` to `F{levels}`, each spreading the next twice; the last selects one field.
    fn fragment_bomb(levels: usize) -> String {
        let mut text = String::from("{ ...F0 }\n");
        for level in 0..levels {
            let next = level + 1;
            text += &format!("fragment F{level} on Query {{ ...F{next} ...F{next} }}\n");
        }
        text += &format!("fragment F{levels} on Query {{ __typename }}\n");
        text
    }

    #[test]
    fn expansion_is_counted_without_expanding() {
        // 2^10 fields: over the limit of 1,000 once expanded, though 11 are written.
        let limits = GraphqlLimits {
            max_fields: 1_000,
            ..limits()
        };
        let refusal = check_document(&document(&fragment_bomb(10)), &limits).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::QueryTooLarge);
        assert!(refusal.message.contains("graphql.max_fields"));
        assert!(check_document(&document(&fragment_bomb(9)), &limits).is_ok());
        // 2^90 saturates rather than overflowing, and takes no time.
        let started = Instant::now();
        assert_eq!(code(check(&fragment_bomb(90))), "query_too_large");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_unused_fragment_is_bounded_too() {
        let mut bomb = fragment_bomb(40);
        bomb = bomb.replace("{ ...F0 }", "{ __typename }");
        assert_eq!(code(check(&bomb)), "query_too_large");
    }

    #[test]
    fn fragment_cycles_are_refused_without_expanding() {
        let cycle = "{ ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }";
        let refusal = check(cycle).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::GraphqlValidationFailed);
        assert!(
            refusal.message.contains("spreads itself"),
            "{}",
            refusal.message
        );
        let itself = "{ ...A } fragment A on Query { __typename ...A }";
        assert_eq!(code(check(itself)), "graphql_validation_failed");
        // A fragment spread twice through different paths is no cycle.
        let diamond = "{ ...A } fragment A on Query { ...B ...C } \
            fragment B on Query { ...D } fragment C on Query { ...D } \
            fragment D on Query { __typename }";
        assert_eq!(code(check(diamond)), "ok");
        // Unknown fragments count nothing; the validator reports them.
        assert_eq!(code(check("{ ...Nowhere __typename }")), "ok");
    }

    #[test]
    fn aliases_count_once_fragments_are_expanded() {
        let aliases: String = (0..50).map(|i| format!("a{i}: __typename ")).collect();
        let text = format!("{{ ...A ...A ...A ...A }} fragment A on Query {{ {aliases} }}");
        assert_eq!(code(check(&text)), "ok");
        let text = format!("{{ ...A ...A ...A ...A ...A }} fragment A on Query {{ {aliases} }}");
        let refusal = check(&text).unwrap_err();
        assert!(
            refusal.message.contains("graphql.max_aliases"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn operations_fragments_and_directives_are_counted() {
        let operations: String = (0..21).map(|i| format!("query Q{i} {{ a }} ")).collect();
        let refusal = check(&operations).unwrap_err();
        assert!(refusal.message.contains("graphql.max_operations"));
        let fragments: String = (0..101)
            .map(|i| format!("fragment F{i} on Query {{ a }} "))
            .collect();
        let refusal = check(&format!("{{ a }} {fragments}")).unwrap_err();
        assert!(refusal.message.contains("graphql.max_fragments"));
        // Directives anywhere: operations, variables, fields, spreads, inline fragments,
        // fragments: nine here.
        let text = "query Q($v: Int @d) @d { a @d ...F @d ... @d { b @d @e } } \
            fragment F on Query @d { c @d }";
        let limits = GraphqlLimits {
            max_directives: 9,
            ..limits()
        };
        assert!(check_document(&document(text), &limits).is_ok());
        let limits = GraphqlLimits {
            max_directives: 8,
            ..limits
        };
        let refusal = check_document(&document(text), &limits).unwrap_err();
        assert!(refusal.message.contains("graphql.max_directives"));
    }

    #[test]
    fn input_values_nest_within_their_own_limit() {
        let limits = GraphqlLimits {
            max_input_depth: 2,
            ..limits()
        };
        for ok in [
            "{ a(b: [[1]]) }",
            "{ a(b: {c: [1]}) }",
            "{ a @d(e: [[1], [2]]) }",
            "query($v: [Int] = [[1]]) { a }",
        ] {
            assert!(check_document(&document(ok), &limits).is_ok(), "{ok}");
        }
        for deep in [
            "{ a(b: [[[1]]]) }",
            "{ a(b: {c: {d: [1]}}) }",
            "{ a { b { c(d: [1, [2, {e: 3}]]) } } }",
            "{ a @d(e: [[[1]]]) }",
            "query($v: [Int] = [[{a: 1}]]) { a }",
            "{ ...F } fragment F on Query { a(b: [[[1]]]) }",
        ] {
            let refusal = check_document(&document(deep), &limits).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::QueryTooDeep, "{deep}");
            assert!(refusal.message.contains("graphql.max_input_depth"));
        }
    }

    #[test]
    fn json_nesting_skips_strings() {
        let limits = GraphqlLimits {
            max_variables_depth: 2,
            ..limits()
        };
        let body = |variables: &str| format!(r#"{{"query": "{{ a }}", "variables": {variables}}}"#);
        assert!(check_json_nesting(body(r#"{"a": [1]}"#).as_bytes(), &limits).is_ok());
        assert!(check_json_nesting(body(r#"{"a": "[[[{{{\"[["}"#).as_bytes(), &limits).is_ok());
        assert!(check_json_nesting(body(r#"{"a\"[[[": "\\"}"#).as_bytes(), &limits).is_ok());
        let refusal = check_json_nesting(body(r#"{"a": [[1]]}"#).as_bytes(), &limits).unwrap_err();
        assert_eq!(refusal.code, ErrorCode::QueryTooLarge);
        assert!(refusal.message.contains("graphql.max_variables_depth"));
    }

    #[test]
    fn json_values_are_counted_iteratively() {
        let limits = GraphqlLimits {
            max_variables_nodes: 5,
            ..limits()
        };
        let five = serde_json::json!({ "a": [1, 2], "b": null });
        assert!(check_json_values([&five], &limits).is_ok());
        let six = serde_json::json!({ "a": [1, 2, 3], "b": null });
        let refusal = check_json_values([&six], &limits).unwrap_err();
        assert!(refusal.message.contains("graphql.max_variables_nodes"));
        // Variables and extensions share the budget.
        assert!(check_json_values([&five, &serde_json::json!(1)], &limits).is_err());
    }
}
