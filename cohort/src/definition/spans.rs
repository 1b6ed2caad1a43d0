//! Where each key and value of a definition file is written: one tree of byte spans for
//! TOML (from the toml crate's spanned document) and JSON (a small scanner, since
//! serde_json gives no spans for values). Problems found after parsing — unknown keys,
//! a condition's value — are located through it, in either format.

use std::ops::Range;

use super::Position;

/// A value of the file and where it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The bytes of the value (for a `[[include]]` table, its header).
    pub span: Range<usize>,
    /// What it holds.
    pub kind: Kind,
}

/// A table's entries, an array's items, or nothing more (a scalar).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Kind {
    /// A string, number, boolean or date.
    #[default]
    Scalar,
    /// An array.
    Array(Vec<Node>),
    /// A table (TOML) or object (JSON): each key, where the key is written, its value.
    Table(Vec<Entry>),
}

/// One key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unquoted.
    pub key: String,
    /// Where the key is written.
    pub key_span: Range<usize>,
    /// Its value.
    pub value: Node,
}

impl Node {
    /// The entries of a table (none for anything else).
    pub fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Table(entries) => entries,
            _ => &[],
        }
    }

    /// The items of an array (none for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Array(items) => items,
            _ => &[],
        }
    }

    /// The entry `key` of a table.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries().iter().find(|e| e.key == key)
    }

    /// The spans of a TOML document that the toml crate can parse.
    pub fn toml(text: &str) -> Option<Node> {
        let table = toml::de::DeTable::parse(text).ok()?;
        let span = table.span();
        Some(Node {
            span,
            kind: toml_table(table.get_ref()),
        })
    }

    /// The spans of a JSON document (one serde_json has already accepted).
    pub fn json(text: &str) -> Option<Node> {
        let mut scanner = JsonScanner {
            text,
            at: 0,
            depth: 0,
        };
        let node = scanner.value()?;
        Some(node)
    }
}

/// A span as a position in `text`, or nothing for an empty span (toml gives implicit
/// tables, such as `static` of `[static.x]`, no place of their own).
pub fn position(text: &str, span: &Range<usize>) -> Option<Position> {
    (span.end > span.start).then(|| Position::of(text, span.clone()))
}

fn toml_table(table: &toml::de::DeTable<'_>) -> Kind {
    let mut entries: Vec<Entry> = table
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            key_span: key.span(),
            value: toml_value(value),
        })
        .collect();
    // In the order of the file (the map is sorted by key), so problems are too.
    entries.sort_by_key(|e| e.key_span.start);
    Kind::Table(entries)
}

fn toml_value(value: &toml::Spanned<toml::de::DeValue<'_>>) -> Node {
    use toml::de::DeValue;
    let kind = match value.get_ref() {
        DeValue::Table(table) => toml_table(table),
        DeValue::Array(items) => Kind::Array(items.iter().map(toml_value).collect()),
        _ => Kind::Scalar,
    };
    Node {
        span: value.span(),
        kind,
    }
}

/// Just enough of a JSON parser to know where things are. It reads text serde_json has
/// accepted, so it never has to explain a syntax error; on anything odd it gives up.
struct JsonScanner<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl JsonScanner<'_> {
    /// Deeper than serde_json's own limit (128) is not a file it accepted.
    const MAX_DEPTH: usize = 256;

    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while self.at < bytes.len() && bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self) -> Option<Node> {
        let start = match self.peek()? {
            b'{' | b'[' if self.depth >= Self::MAX_DEPTH => return None,
            _ => self.at,
        };
        let kind = match self.peek()? {
            b'{' => {
                self.depth += 1;
                self.at += 1;
                let mut entries = Vec::new();
                if self.eat(b'}').is_none() {
                    loop {
                        self.peek()?;
                        let key_span = self.string()?;
                        let key = serde_json::from_str(&self.text[key_span.clone()]).ok()?;
                        self.eat(b':')?;
                        let value = self.value()?;
                        entries.push(Entry {
                            key,
                            key_span,
                            value,
                        });
                        if self.eat(b',').is_none() {
                            self.eat(b'}')?;
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Kind::Table(entries)
            }
            b'[' => {
                self.depth += 1;
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']').is_none() {
                    loop {
                        items.push(self.value()?);
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Kind::Array(items)
            }
            b'"' => {
                self.string()?;
                Kind::Scalar
            }
            _ => {
                let rest = &self.text.as_bytes()[self.at..];
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                if len == 0 {
                    return None;
                }
                self.at += len;
                Kind::Scalar
            }
        };
        Some(Node {
            span: start..self.at,
            kind,
        })
    }

    /// A string, quotes included.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        let bytes = self.text.as_bytes();
        if bytes.get(start) != Some(&b'"') {
            return None;
        }
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.at = i + 1;
                    return Some(start..self.at);
                }
                _ => i += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(node: &Node) -> Vec<&str> {
        node.entries().iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn json_spans_point_at_keys_and_values() {
        let text = "{\"include\": [\n  {\"conditions\": [{\"op\": \"in\", \"v\\u0061lue\": [] }]}\n], \"n\": -1.5e3}";
        let root = Node::json(text).unwrap();
        assert_eq!(keys(&root), ["include", "n"]);
        let condition = &root.get("include").unwrap().value.items()[0]
            .get("conditions")
            .unwrap()
            .value
            .items()[0];
        let value = condition.get("value").unwrap();
        assert_eq!(&text[value.key_span.clone()], "\"v\\u0061lue\"");
        assert_eq!(&text[value.value.span.clone()], "[]");
        assert_eq!(position(text, &value.value.span).unwrap().line, 2);
        assert_eq!(&text[root.get("n").unwrap().value.span.clone()], "-1.5e3");
        assert_eq!(Node::json("{\"a\": [1, 2"), None);
    }

    #[test]
    fn toml_spans_point_at_keys_and_values() {
        let text = "name = \"x\"\n[[include]]\nmtch = \"all\"\nconditions = [\n  { op = \"in\", value = [] },\n]\n[static]\nincluded = [1]\n";
        let root = Node::toml(text).unwrap();
        assert_eq!(keys(&root), ["name", "include", "static"]);
        let clause = &root.get("include").unwrap().value.items()[0];
        assert_eq!(keys(clause), ["mtch", "conditions"]);
        assert_eq!(
            position(text, &clause.get("mtch").unwrap().key_span)
                .unwrap()
                .line,
            3
        );
        let value = &clause.get("conditions").unwrap().value.items()[0]
            .get("value")
            .unwrap()
            .value;
        assert_eq!(&text[value.span.clone()], "[]");
        let stat = root.get("static").unwrap();
        assert_eq!(
            &text[stat.value.get("included").unwrap().key_span.clone()],
            "included"
        );
    }
}
