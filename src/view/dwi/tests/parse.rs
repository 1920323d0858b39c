//! Reading bval/bvec pairs: layouts, separators, number forms, and every error.

use super::super::{Problem, SidecarKind};
use super::{grads, parse};

fn texts(g: &super::Gradients) -> (Vec<String>, Vec<[String; 3]>) {
    let b = (0..g.len())
        .map(|k| g.bval(k).unwrap().text().to_string())
        .collect();
    let v = (0..g.len())
        .map(|k| g.bvec(k).unwrap().clone().map(|n| n.text().to_string()))
        .collect();
    (b, v)
}

fn problem(bval: &str, bvec: &str, n: u64) -> (SidecarKind, Problem) {
    let e = parse(bval, bvec, n).unwrap_err();
    (e.file, e.problem)
}

#[test]
fn three_rows_and_rows_of_three_read_the_same() {
    let rows = grads("0 1000 2000 5\n", "0 1 0 1\n0 0 0.6 0\n0 0 0.8 0\n", 4);
    let cols = grads("0 1000 2000 5\n", "0 0 0\n1 0 0\n0 0.6 0.8\n1 0 0\n", 4);
    let (_, vr) = texts(&rows);
    assert_eq!(vr[2], ["0".to_string(), "0.6".into(), "0.8".into()]);
    assert_eq!(texts(&rows), texts(&cols));
    assert_eq!(texts(&cols).1[1], ["1".to_string(), "0".into(), "0".into()]);
}

#[test]
fn a_three_by_three_file_is_three_rows_of_x_y_z() {
    // As FSL and MRtrix3 read it: row 1 is x of volumes 0, 1, 2.
    let g = grads("1000 1000 1000", "1 2 3\n4 5 6\n7 8 9\n", 3);
    assert_eq!(texts(&g).1[0], ["1".to_string(), "4".into(), "7".into()]);
    assert_eq!(texts(&g).1[2], ["3".to_string(), "6".into(), "9".into()]);
}

#[test]
fn one_volume_reads_as_a_row_or_a_column() {
    let row = grads("1000\n", "1 0 0\n", 1);
    let col = grads("1000", "1\n0\n0\n", 1);
    assert_eq!(texts(&row), texts(&col));
}

#[test]
fn b_values_may_be_one_per_line() {
    let g = grads("0\n1000\r\n2000\n\n", "1 0 0\n0 1 0\n0 0 1\n", 3);
    assert_eq!(texts(&g).0, ["0", "1000", "2000"]);
}

#[test]
fn separators_line_ends_and_blank_lines() {
    let plain = grads("0 5 1000 2000\n", "0 1 0 0\n0 0 1 0\n0 0 0 1\n", 4);
    for (bval, bvec) in [
        ("0\t5  1000\t \t2000", "0 1 0 0\n0 0 1 0\n0 0 0 1"),
        ("0 5 1000 2000 \r\n", "0 1 0 0 \r\n0 0 1 0\t\r\n0 0 0 1\r\n"),
        (
            "\n\n  0 5 1000 2000\n\n\n",
            "\n0 1 0 0\n\n0 0 1 0\n  \t\n0 0 0 1\n\n\n",
        ),
        (
            "0 5 1000 2000\r\n\r\n",
            "  0 1 0 0\r\n  0 0 1 0\r\n  0 0 0 1\r\n\r\n",
        ),
    ] {
        assert_eq!(
            texts(&grads(bval, bvec, 4)),
            texts(&plain),
            "{bval:?} {bvec:?}"
        );
    }
}

#[test]
fn number_forms_keep_their_text_and_value() {
    let tokens = [
        "0", "-0", "1000", "1e3", "1E+03", "2.5e-1", ".5", "5.", "+5", "007", "1.e2", "NaN", "nan",
        "-nan", "INF", "-inf", "1e-400",
    ];
    let values = [
        0.0,
        -0.0,
        1000.0,
        1000.0,
        1000.0,
        0.25,
        0.5,
        5.0,
        5.0,
        7.0,
        100.0,
        f64::NAN,
        f64::NAN,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
    ];
    let n = tokens.len();
    let bval = tokens.join(" ");
    let bvec = (0..3)
        .map(|_| tokens.join("\t"))
        .collect::<Vec<_>>()
        .join("\n");
    let g = grads(&bval, &bvec, n as u64);
    for (k, (t, v)) in tokens.iter().zip(values).enumerate() {
        let b = g.bval(k as u64).unwrap();
        assert_eq!(b.text(), *t);
        assert!(
            b.value() == v || (v.is_nan() && b.value().is_nan()),
            "{t}: {}",
            b.value()
        );
        assert_eq!(g.bvec(k as u64).unwrap()[2].text(), *t);
    }
    assert!(
        g.bval(0).unwrap().value().is_sign_positive()
            && g.bval(1).unwrap().value().is_sign_negative()
    );
    assert!(g.bval(n as u64).is_none());
}

#[test]
fn what_is_not_a_number_is_named_with_its_place() {
    for bad in [
        "1,000",
        "1e",
        "e5",
        ".",
        "-",
        "+nan",
        "+inf",
        "infinity",
        "0x10",
        "1.2.3",
        "#",
        "1000#",
        "5e+",
        "--1",
        "\u{feff}0",
        "\u{b}",
    ] {
        let (file, p) = problem(&format!("0 1000\n0 {bad} 7"), "", 3);
        assert_eq!(file, SidecarKind::Bval, "{bad:?}");
        let token = format!("{:?}", bad);
        assert_eq!(
            p,
            Problem::NotANumber {
                line: 2,
                column: 2,
                token: token.clone()
            },
            "{bad:?}"
        );
        assert_eq!(
            p.to_string(),
            format!("line 2, value 2: {token} is not a number")
        );
    }
    let long = "9".repeat(30) + &"x".repeat(30);
    let (_, p) = problem(&long, "", 1);
    assert!(
        p.to_string().contains(&format!("{:?}...", &long[..40])),
        "{p}"
    );
    let (_, p) = problem("1e999", "", 1);
    assert_eq!(
        p.to_string(),
        "line 1, value 1: \"1e999\" is too large for a double"
    );
}

#[test]
fn empty_files() {
    for empty in ["", "\n", "\n\n  \t\r\n", " "] {
        assert_eq!(
            problem(empty, "1 0 0", 1),
            (SidecarKind::Bval, Problem::Empty)
        );
        assert_eq!(
            problem("1000", empty, 1),
            (SidecarKind::Bvec, Problem::Empty)
        );
    }
    assert_eq!(
        Problem::Empty.to_string(),
        "no numbers in the file (it is empty or blank)"
    );
}

#[test]
fn counts_must_be_one_per_volume() {
    let row = |n: usize| vec!["1000"; n].join(" ");
    let rows = |n: usize| format!("{}\n{}\n{}\n", row(n), row(n), row(n));
    for (bvals, vectors, volumes, message) in [
        (61, 60, 60, "bval file: 61 b-values for 60 volumes"),
        (60, 59, 60, "bvec file: 59 vectors for 60 volumes"),
        (2, 2, 1, "bval file: 2 b-values for 1 volume"),
        (1, 3, 1, "bvec file: 3 vectors for 1 volume"),
    ] {
        let e = parse(&row(bvals), &rows(vectors), volumes).unwrap_err();
        assert_eq!(e.to_string(), format!("{message} (one per volume needed)"));
    }
    // The bval is checked first, even when both are wrong.
    assert_eq!(problem("1 2", "", 3).0, SidecarKind::Bval);
}

#[test]
fn shapes_that_are_neither_rows_nor_columns() {
    let (file, p) = problem("0 1000 2000\n0 1000 2000\n", "", 6);
    assert_eq!(
        (file, &p),
        (
            SidecarKind::Bval,
            &Problem::BvalShape {
                rows: 2,
                columns: 3
            }
        )
    );
    assert_eq!(
        p.to_string(),
        "2 rows of 3 values: b-values must be one row, or one value per line"
    );
    let (file, p) = problem("0 1000", "1 0\n0 1\n", 2);
    assert_eq!(
        (file, &p),
        (
            SidecarKind::Bvec,
            &Problem::BvecShape {
                rows: 2,
                columns: 2
            }
        )
    );
    assert_eq!(
        p.to_string(),
        "2 rows of 2 values: vectors must be 3 rows (x, y, z) of one value per volume, \
         or one row of 3 values per volume"
    );
    let (_, p) = problem("0 1 2 3", "1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", 4);
    assert_eq!(
        p,
        Problem::BvecShape {
            rows: 4,
            columns: 4
        }
    );
    let (_, p) = problem("0 1", "1 0 0 0 1 0\n", 2);
    assert_eq!(
        p,
        Problem::BvecShape {
            rows: 1,
            columns: 6
        }
    );
}

#[test]
fn ragged_rows_name_both_lines() {
    let (file, p) = problem("0 1000 2000", "1 0 0\n\n0 1 0\n0 0\n", 3);
    assert_eq!(file, SidecarKind::Bvec);
    assert_eq!(
        p,
        Problem::Ragged {
            first_line: 1,
            first_count: 3,
            line: 4,
            count: 2
        }
    );
    assert_eq!(
        p.to_string(),
        "line 4 has 2 values but line 1 has 3 (every row needs the same count)"
    );
    let (_, p) = problem("0\n1000\n1000 5\n", "", 3);
    assert_eq!(
        p.to_string(),
        "line 3 has 2 values but line 1 has 1 (every row needs the same count)"
    );
}
