//! A corpus of records that carry known personal data in every way a feed can
//! break: in PII fields of every JSON type, in free text, in fields no schema
//! knows, in lines cut short, not UTF-8, too large or not an object, and in
//! good records. None of [`Corpus::secrets`] may appear in any output.

/// The feed lines and the values that must never come out.
pub struct Corpus {
    /// (feed, raw line).
    pub lines: Vec<(&'static str, Vec<u8>)>,
    pub secrets: Vec<&'static str>,
}

/// Largest record the runs that read the corpus accept, so one line is too large.
pub const MAX_RECORD_BYTES: usize = 4096;

fn petition(id: &str, time: &str, persons: &str, petitioner: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_time":"{time}","district":"西湖区","street":"北山街道","category":"housing","channel":"visit","persons":{persons},"petitioner_id":{petitioner}}}"#
    )
}

fn opinion(id: &str, time: &str, reach: &str, author: &str, text: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_time":"{time}","district":"西湖区","platform":"weibo","topic":"拆迁","author_id":"{author}","text":"{text}","sentiment":-0.8,"reach":{reach}}}"#
    )
}

pub fn corpus() -> Corpus {
    let s = [
        "110101199003071234",  // 0: a good petition's id number
        "13800138000",         // 1: a petitioner id sent as a number
        "15811112222",         // 2: inside an object in the PII field
        "13700001111",         // 3: inside an array in the PII field
        "110101198001011111",  // 4: a field no schema knows
        "110101197001012222",  // 5: a line cut short
        "13600002222",         // 6: a line that is not UTF-8
        "13500003333",         // 7: a line too large
        "13400004444",         // 8: a JSON array, not an object
        "13300005555",         // 9: a JSON string, not an object
        "AUTHORzhangsan0001",  // 10: a good post's author
        "张三电话13912345678", // 11: a good post's text
        "AUTHORlisi00000002",  // 12: a bad post's author
        "李四住址某小区8号",   // 13: a bad post's text
        "110101196001013333",  // 14: a late petition
    ];
    let q = |v: &str| format!("\"{v}\"");
    let mut lines: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let add = |lines: &mut Vec<(&'static str, Vec<u8>)>, feed: &'static str, line: String| {
        lines.push((feed, line.into_bytes()))
    };
    add(
        &mut lines,
        "petition",
        petition("P-1", "2026-03-14T10:00:00Z", "1", &q(s[0])),
    );
    add(
        &mut lines,
        "petition",
        petition("P-2", "2026-03-14T10:01:00Z", "1", s[1]),
    );
    add(
        &mut lines,
        "petition",
        petition(
            "P-3",
            "2026-03-14T10:02:00Z",
            "1",
            &format!(r#"{{"phone":"{}"}}"#, s[2]),
        ),
    );
    add(
        &mut lines,
        "petition",
        petition(
            "P-4",
            "2026-03-14T10:03:00Z",
            "1",
            &format!(r#"["{}", 7]"#, s[3]),
        ),
    );
    // Bad in another field; the unknown field carries the secret.
    add(
        &mut lines,
        "petition",
        petition("P-5", "2026-03-14T10:04:00Z", "\"many\"", &q("x"))
            .replace("}", &format!(r#","id_card":"{}"}}"#, s[4])),
    );
    let cut = petition("P-6", "2026-03-14T10:05:00Z", "1", &q(s[5]));
    add(&mut lines, "petition", cut[..cut.len() - 2].to_string());
    let mut not_utf8 = petition("P-7", "2026-03-14T10:06:00Z", "1", &q(s[6])).into_bytes();
    not_utf8.insert(20, 0xff);
    add(&mut lines, "petition", String::new());
    lines.last_mut().expect("a line").1 = not_utf8;
    let pad = "某".repeat(MAX_RECORD_BYTES / 3);
    add(
        &mut lines,
        "petition",
        petition("P-8", "2026-03-14T10:07:00Z", "1", &q(s[7])).replace("housing", &pad),
    );
    add(&mut lines, "petition", format!(r#"["{}", 1]"#, s[8]));
    add(&mut lines, "petition", q(s[9]));
    add(
        &mut lines,
        "public_opinion",
        opinion("O-1", "2026-03-14T10:00:00Z", "100", s[10], s[11]),
    );
    add(
        &mut lines,
        "public_opinion",
        opinion("O-2", "2026-03-14T10:01:00Z", "\"lots\"", s[12], s[13]),
    );
    // Windows move on, then a petition arrives hours late.
    add(
        &mut lines,
        "petition",
        petition("P-9", "2026-03-14T16:00:00Z", "1", &q("on-time")),
    );
    add(
        &mut lines,
        "public_opinion",
        opinion("O-3", "2026-03-14T16:00:00Z", "5", "a", "b"),
    );
    add(
        &mut lines,
        "petition",
        petition("P-10", "2026-03-14T09:00:00Z", "6", &q(s[14])),
    );
    Corpus {
        lines,
        secrets: s.to_vec(),
    }
}

/// The secrets found in `text`, with the place they were found.
pub fn leaks(corpus: &Corpus, place: &str, text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    corpus
        .secrets
        .iter()
        .filter(|s| text.contains(*s))
        .map(|s| format!("{s} in {place}"))
        .collect()
}
