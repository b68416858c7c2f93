//! Where each field of a RON document sits, so that a configuration error can name its line
//! and column (D-IN-3).
//!
//! `ron` reports a position for syntax and type errors, but its `Value` forgets positions and
//! our semantic checks (zero timeouts, duplicate names) run on the deserialized structs. This is
//! a small, tolerant scanner of RON's nesting only: brackets, field names, map keys, strings and
//! comments. It understands no values and never fails; it answers two questions: where does the
//! value at a path start, and which path holds a position.

use std::fmt;

/// A line and a column, both counted from 1, the column in characters (as `ron` counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A struct field or a map key.
    Field(String),
    /// The n-th element of a list (or of a tuple), from 0.
    Index(usize),
}

/// A path into the document, displayed as the operator writes it: `pipelines[0].outdev`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document itself.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path followed by a field.
    pub fn field(mut self, name: &str) -> Self {
        self.0.push(Segment::Field(name.to_string()));
        self
    }

    /// This path followed by a list index.
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Segment::Index(i));
        self
    }

    /// The last field name on the path, if it ends with one.
    pub fn last_field(&self) -> Option<&str> {
        match self.0.last() {
            Some(Segment::Field(f)) => Some(f),
            _ => None,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("top level");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Field(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    // A map key is shown as written, and it may hold a line break: escape
                    // control characters so that an error naming the path stays one line.
                    for c in name.chars() {
                        if c.is_control() {
                            write!(f, "{}", c.escape_default())?;
                        } else {
                            write!(f, "{c}")?;
                        }
                    }
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Open(u8),
    Close,
    Comma,
    Colon,
    Ident,
    Str,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// A value: a leaf (start..end) or a bracketed group with its entries.
#[derive(Debug)]
struct Node {
    start: usize,
    end: usize,
    children: Vec<Child>,
}

#[derive(Debug)]
struct Child {
    /// The field name or map key; `None` for list and tuple elements.
    name: Option<String>,
    /// Where the entry starts (its name, or its value when unnamed).
    start: usize,
    node: Node,
}

/// Deeper nesting than this is skipped as one opaque value, so no input can exhaust the stack.
const MAX_DEPTH: usize = 64;

/// The nesting of one RON document.
pub struct SourceMap<'a> {
    text: &'a str,
    root: Node,
}

impl<'a> SourceMap<'a> {
    /// Scans `text`. Malformed text gives a best-effort map, never an error.
    pub fn new(text: &'a str) -> Self {
        let tokens = tokenize(text);
        let mut parser = Parser {
            tokens: &tokens,
            next: 0,
            text,
        };
        parser.skip_attributes();
        let root = parser.value(0);
        SourceMap { text, root }
    }

    /// Where the value at `path` starts; when part of the path is absent (a defaulted field),
    /// where the deepest present part starts.
    pub fn locate(&self, path: &FieldPath) -> Position {
        self.position(self.find(path).start)
    }

    /// The deepest path whose entry contains `pos`.
    pub fn path_at(&self, pos: Position) -> FieldPath {
        let offset = self.offset(pos);
        let mut path = FieldPath::root();
        let mut node = &self.root;
        'descend: loop {
            let mut index = 0;
            for c in &node.children {
                if c.start <= offset && offset < c.node.end.max(c.start + 1) {
                    path.0.push(match &c.name {
                        Some(n) => Segment::Field(n.clone()),
                        None => Segment::Index(index),
                    });
                    node = &c.node;
                    continue 'descend;
                }
                if c.name.is_none() {
                    index += 1;
                }
            }
            return path;
        }
    }

    fn find(&self, path: &FieldPath) -> &Node {
        let mut node = &self.root;
        for seg in &path.0 {
            match child(node, seg) {
                Some(c) => node = c,
                None => break,
            }
        }
        node
    }

    /// Line and column of a byte offset.
    fn position(&self, offset: usize) -> Position {
        let mut line = 1;
        let mut col = 1;
        for (i, c) in self.text.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        Position { line, col }
    }

    /// Byte offset of a line and column (the end of the text if past it).
    fn offset(&self, pos: Position) -> usize {
        let mut line = 1;
        let mut col = 1;
        for (i, c) in self.text.char_indices() {
            if line == pos.line && col >= pos.col || line > pos.line {
                return i;
            }
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        self.text.len()
    }
}

fn child<'n>(node: &'n Node, seg: &Segment) -> Option<&'n Node> {
    match seg {
        Segment::Field(name) => node
            .children
            .iter()
            .find(|c| c.name.as_deref() == Some(name.as_str()))
            .map(|c| &c.node),
        Segment::Index(n) => node
            .children
            .iter()
            .filter(|c| c.name.is_none())
            .nth(*n)
            .map(|c| &c.node),
    }
}

struct Parser<'t> {
    tokens: &'t [Token],
    next: usize,
    text: &'t str,
}

impl Parser<'_> {
    fn peek(&self, ahead: usize) -> Option<Token> {
        self.tokens.get(self.next + ahead).copied()
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.peek(0);
        if t.is_some() {
            self.next += 1;
        }
        t
    }

    /// `#![enable(...)]` lines before the value.
    fn skip_attributes(&mut self) {
        while let Some(t) = self.peek(0) {
            let is_attr = t.kind == Kind::Other
                && self
                    .text
                    .get(t.start..t.end)
                    .is_some_and(|s| s.starts_with('#'));
            if !is_attr {
                return;
            }
            self.bump();
            if matches!(
                self.peek(0),
                Some(Token {
                    kind: Kind::Open(_),
                    ..
                })
            ) {
                self.group(MAX_DEPTH);
            }
        }
    }

    fn value(&mut self, depth: usize) -> Node {
        let Some(t) = self.peek(0) else {
            let end = self.text.len();
            return leaf(end, end);
        };
        match t.kind {
            Kind::Open(_) => self.group(depth),
            Kind::Ident => {
                self.bump();
                if matches!(
                    self.peek(0),
                    Some(Token {
                        kind: Kind::Open(b'('),
                        ..
                    })
                ) {
                    let mut g = self.group(depth);
                    g.start = t.start;
                    // `Some(x)` only wraps x: paths go through it, as serde reads it.
                    if self.text.get(t.start..t.end) == Some("Some")
                        && g.children.len() == 1
                        && g.children[0].name.is_none()
                    {
                        g.children = g.children.remove(0).node.children;
                    }
                    g
                } else {
                    leaf(t.start, t.end)
                }
            }
            Kind::Str | Kind::Other => {
                self.bump();
                leaf(t.start, t.end)
            }
            // A missing value: leave the punctuation to the enclosing group.
            Kind::Close | Kind::Comma | Kind::Colon => leaf(t.start, t.start),
        }
    }

    fn group(&mut self, depth: usize) -> Node {
        let Some(open) = self.bump() else {
            let end = self.text.len();
            return leaf(end, end);
        };
        let Kind::Open(bracket) = open.kind else {
            return leaf(open.start, open.end);
        };
        if depth >= MAX_DEPTH {
            return self.skip_group(open);
        }
        let mut children = Vec::new();
        loop {
            let Some(t) = self.peek(0) else {
                return Node {
                    start: open.start,
                    end: self.text.len(),
                    children,
                };
            };
            match t.kind {
                Kind::Close => {
                    self.bump();
                    return Node {
                        start: open.start,
                        end: t.end,
                        children,
                    };
                }
                Kind::Comma | Kind::Colon => {
                    self.bump();
                }
                Kind::Ident
                    if bracket == b'('
                        && matches!(
                            self.peek(1),
                            Some(Token {
                                kind: Kind::Colon,
                                ..
                            })
                        ) =>
                {
                    self.bump();
                    self.bump();
                    let node = self.value(depth + 1);
                    children.push(Child {
                        name: self.text.get(t.start..t.end).map(str::to_string),
                        start: t.start,
                        node,
                    });
                }
                _ if bracket == b'{' => {
                    let key = self.value(depth + 1);
                    if matches!(
                        self.peek(0),
                        Some(Token {
                            kind: Kind::Colon,
                            ..
                        })
                    ) {
                        self.bump();
                        let node = self.value(depth + 1);
                        children.push(Child {
                            name: Some(key_name(self.text, &key)),
                            start: key.start,
                            node,
                        });
                    } else {
                        children.push(Child {
                            name: None,
                            start: key.start,
                            node: key,
                        });
                    }
                }
                _ => {
                    let node = self.value(depth + 1);
                    children.push(Child {
                        name: None,
                        start: node.start,
                        node,
                    });
                }
            }
        }
    }

    /// Skips a too-deep group by counting brackets.
    fn skip_group(&mut self, open: Token) -> Node {
        let mut level = 1usize;
        while let Some(t) = self.bump() {
            match t.kind {
                Kind::Open(_) => level += 1,
                Kind::Close => {
                    level -= 1;
                    if level == 0 {
                        return leaf(open.start, t.end);
                    }
                }
                _ => {}
            }
        }
        leaf(open.start, self.text.len())
    }
}

fn leaf(start: usize, end: usize) -> Node {
    Node {
        start,
        end,
        children: Vec::new(),
    }
}

/// A map key as a path segment: a string key without its quotes, anything else as written.
fn key_name(text: &str, key: &Node) -> String {
    let raw = text.get(key.start..key.end).unwrap_or("");
    raw.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw)
        .to_string()
}

fn tokenize(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let n = b.len();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < n {
        let start = i;
        let c = b[i];
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < n && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i);
                continue;
            }
            b'(' | b'[' | b'{' => {
                i += 1;
                Kind::Open(c)
            }
            b')' | b']' | b'}' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b':' => {
                i += 1;
                Kind::Colon
            }
            b'"' => {
                i = skip_quoted(b, i + 1, b'"');
                Kind::Str
            }
            b'\'' => {
                i = skip_quoted(b, i + 1, b'\'');
                Kind::Other
            }
            _ => {
                if let Some(end) = raw_string_end(b, i) {
                    i = end;
                    Kind::Str
                } else if c.is_ascii_alphabetic() || c == b'_' {
                    if c == b'r' && b.get(i + 1) == Some(&b'#') {
                        i += 2;
                    }
                    while i < n && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    Kind::Ident
                } else {
                    i += 1;
                    while i < n && !is_delimiter(b, i) {
                        i += 1;
                    }
                    Kind::Other
                }
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens
}

fn is_delimiter(b: &[u8], i: usize) -> bool {
    matches!(
        b[i],
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b','
            | b':'
            | b'"'
            | b'\''
    ) || (b[i] == b'/' && matches!(b.get(i + 1), Some(b'/' | b'*')))
}

/// The end of a (nested) block comment starting at `i`, or the end of the text.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut level = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            level += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            level -= 1;
            i += 2;
            if level == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The end of a quoted literal whose body starts at `i`, honouring backslash escapes.
fn skip_quoted(b: &[u8], mut i: usize, quote: u8) -> usize {
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            return i + 1;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The end of a raw or byte string (`r"…"`, `r#"…"#`, `b"…"`, `br#"…"#`) starting at `i`.
fn raw_string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
        if b.get(j) == Some(&b'"') {
            return Some(skip_quoted(b, j + 1, b'"'));
        }
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if b.get(j) != Some(&b'"') {
        return None;
    }
    j += 1;
    while j < b.len() {
        if b[j] == b'"'
            && b[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == b'#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(b.len())
}

#[cfg(test)]
mod test {
    use super::*;

    const DOC: &str = r##"// a comment (with brackets]
#![enable(implicit_some)]
(
    log: (level: "info", modules: {"colo_core": "debug"}),
    /* a block /* nested */ comment */
    pipelines: [
        (
            name: "nic0",
            primary_in: "tcp-listen:127.0.0.1:9001",
            compare_timeout: 0,
        ),
        (name: "nic1", note: r#"raw ") string"#, compare_timeout: 5),
    ],
)
"##;

    fn path(s: &[&str]) -> FieldPath {
        s.iter()
            .fold(FieldPath::root(), |p, seg| match seg.parse() {
                Ok(n) => p.index(n),
                Err(_) => p.field(seg),
            })
    }

    #[test]
    fn locates_values_by_path() {
        let map = SourceMap::new(DOC);
        let at = |s: &[&str]| {
            let p = map.locate(&path(s));
            (p.line, p.col)
        };
        assert_eq!(at(&["pipelines", "0", "compare_timeout"]), (10, 30));
        assert_eq!(at(&["pipelines", "0", "name"]), (8, 19));
        assert_eq!(at(&["pipelines", "1", "compare_timeout"]), (12, 67));
        assert_eq!(at(&["log", "modules", "colo_core"]), (4, 49));
        // A field that is not written: the pipeline it belongs to.
        assert_eq!(at(&["pipelines", "1", "outdev"]), (12, 9));
        assert_eq!(at(&["pipelines", "7"]), (6, 16));
    }

    #[test]
    fn finds_the_path_holding_a_position() {
        let map = SourceMap::new(DOC);
        let path_at = |line, col| map.path_at(Position { line, col }).to_string();
        assert_eq!(path_at(10, 30), "pipelines[0].compare_timeout");
        assert_eq!(path_at(10, 13), "pipelines[0].compare_timeout");
        assert_eq!(path_at(11, 9), "pipelines[0]");
        assert_eq!(path_at(12, 25), "pipelines[1].note");
        assert_eq!(path_at(4, 50), "log.modules.colo_core");
        assert_eq!(path_at(1, 1), "top level");
        assert_eq!(path_at(99, 1), "top level");
    }

    #[test]
    fn tolerates_any_input() {
        for text in [
            "",
            "(",
            ")",
            "((((",
            "(a: [1, 2, (b: \"unterminated",
            "{:::,,,}",
            "r#\"",
            "/* open",
            "(a: 'x', b: '\\'', c: b\"x\", d: br#\"y\"#)",
            "ü(ä: \"ö\")",
        ] {
            let map = SourceMap::new(text);
            for line in 1..3 {
                for col in 1..12 {
                    let _ = map.path_at(Position { line, col });
                }
            }
            let _ = map.locate(&path(&["a", "0", "b"]));
        }
        let deep = "(".repeat(10_000);
        let map = SourceMap::new(&deep);
        assert_eq!(map.locate(&path(&["x"])), Position { line: 1, col: 1 });
    }

    #[test]
    fn a_key_with_a_line_break_is_shown_on_one_line() {
        // Found by the config_loader fuzz target: the key `(\n)` broke the error line.
        let map = SourceMap::new("(s: {(\n): 1})");
        let shown = map.path_at(Position { line: 2, col: 1 }).to_string();
        assert_eq!(shown, "s.(\\n)");
    }

    #[test]
    fn paths_go_through_some() {
        let text = "(a: Some((b: 1, c: Some(\"x\"))), d: None)";
        let map = SourceMap::new(text);
        assert_eq!(
            map.locate(&path(&["a", "c"])),
            Position { line: 1, col: 20 }
        );
        assert_eq!(
            map.path_at(Position { line: 1, col: 14 }).to_string(),
            "a.b"
        );
        assert_eq!(map.locate(&path(&["a"])), Position { line: 1, col: 5 });
    }

    #[test]
    fn multibyte_text_counts_columns_in_characters() {
        let map = SourceMap::new("(ä: \"ö\", b: 1)");
        assert_eq!(map.locate(&path(&["b"])), Position { line: 1, col: 13 });
        assert_eq!(map.path_at(Position { line: 1, col: 13 }).to_string(), "b");
    }
}
