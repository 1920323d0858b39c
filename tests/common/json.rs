//! A minimal JSON value and parser for the tests, enough to check
//! `.nifuse/stats`.
#![allow(dead_code)]

/// A minimal JSON value and parser, enough to check `.nifuse/stats`.
#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn get(&self, key: &str) -> &J {
        match self {
            J::Obj(kv) => {
                &kv.iter()
                    .find(|(k, _)| k == key)
                    .unwrap_or_else(|| panic!("no key {key} in {self:?}"))
                    .1
            }
            _ => panic!("not an object: {self:?}"),
        }
    }
    pub fn num(&self) -> f64 {
        match self {
            J::Num(n) => *n,
            _ => panic!("not a number: {self:?}"),
        }
    }
    pub fn str(&self) -> &str {
        match self {
            J::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }
    pub fn nums(&self) -> Vec<f64> {
        self.arr().iter().map(J::num).collect()
    }
    pub fn matrix(&self) -> Vec<Vec<f64>> {
        self.arr().iter().map(J::nums).collect()
    }
    pub fn arr(&self) -> &[J] {
        match self {
            J::Arr(v) => v,
            _ => panic!("not an array: {self:?}"),
        }
    }
    /// The row of image `path` in a parsed `.nifuse/stats`.
    pub fn image_row(&self, path: &str) -> &J {
        self.get("images")
            .arr()
            .iter()
            .find(|r| r.get("path").str() == path)
            .unwrap_or_else(|| panic!("no stats row for {path}: {self:?}"))
    }
}

pub fn parse_json(text: &str) -> J {
    fn ws(s: &[u8], i: &mut usize) {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    fn string(s: &[u8], i: &mut usize) -> String {
        assert_eq!(s[*i], b'"');
        *i += 1;
        let mut out = Vec::new();
        loop {
            let c = s[*i];
            *i += 1;
            match c {
                b'"' => return String::from_utf8(out).expect("utf-8 string"),
                b'\\' => {
                    let e = s[*i];
                    *i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&s[*i..*i + 4]).unwrap();
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap();
                            *i += 4;
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        _ => panic!("bad escape \\{}", e as char),
                    }
                }
                c if c < 0x20 => panic!("raw control character in a JSON string"),
                c => out.push(c),
            }
        }
    }
    fn value(s: &[u8], i: &mut usize) -> J {
        ws(s, i);

        match s[*i] {
            b'{' => {
                *i += 1;
                let mut kv = Vec::new();
                ws(s, i);
                if s[*i] == b'}' {
                    *i += 1;
                    return J::Obj(kv);
                }
                loop {
                    ws(s, i);
                    let k = string(s, i);
                    ws(s, i);
                    assert_eq!(s[*i], b':', "':' expected at {}", *i);
                    *i += 1;
                    kv.push((k, value(s, i)));
                    ws(s, i);
                    *i += 1;
                    match s[*i - 1] {
                        b',' => continue,
                        b'}' => break,
                        c => panic!("',' or '}}' expected at {}, got {:?}", *i - 1, c as char),
                    }
                }
                J::Obj(kv)
            }
            b'[' => {
                *i += 1;
                let mut v = Vec::new();
                ws(s, i);
                if s[*i] == b']' {
                    *i += 1;
                    return J::Arr(v);
                }
                loop {
                    v.push(value(s, i));
                    ws(s, i);
                    *i += 1;
                    match s[*i - 1] {
                        b',' => continue,
                        b']' => break,
                        c => panic!("',' or ']' expected at {}, got {:?}", *i - 1, c as char),
                    }
                }
                J::Arr(v)
            }
            b'"' => J::Str(string(s, i)),
            b't' if s[*i..].starts_with(b"true") => {
                *i += 4;
                J::Bool(true)
            }
            b'f' if s[*i..].starts_with(b"false") => {
                *i += 5;
                J::Bool(false)
            }
            b'n' if s[*i..].starts_with(b"null") => {
                *i += 4;
                J::Null
            }
            _ => {
                let start = *i;
                while *i < s.len() && (s[*i].is_ascii_digit() || b"+-.eE".contains(&s[*i])) {
                    *i += 1;
                }
                J::Num(
                    std::str::from_utf8(&s[start..*i])
                        .unwrap()
                        .parse()
                        .expect("JSON number"),
                )
            }
        }
    }
    let s = text.as_bytes();
    let mut i = 0;
    let v = value(s, &mut i);
    ws(s, &mut i);
    assert_eq!(i, s.len(), "trailing characters after the JSON value");
    v
}
