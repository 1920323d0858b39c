//! The `.bval`/`.bvec` files of selections: tokens as written, layout, sizes.

use super::grads;

#[test]
fn selections_copy_tokens_as_written() {
    let g = grads(
        "0\t1.0e3  2000.000 NaN \r\n",
        "0 1 0 -0.5\n0 0 1E-1 nan\n0 0 0 0.86602540378\n",
        4,
    );
    assert_eq!(g.bval_file(&[0]).unwrap(), b"0\n");
    assert_eq!(g.bval_file(&[3, 1]).unwrap(), b"NaN 1.0e3\n");
    assert_eq!(
        g.bval_file(&[0, 1, 2, 3]).unwrap(),
        b"0 1.0e3 2000.000 NaN\n"
    );
    assert_eq!(
        g.bvec_file(&[2, 3]).unwrap(),
        b"0 -0.5\n1E-1 nan\n0 0.86602540378\n"
    );
    assert_eq!(g.bvec_file(&[1]).unwrap(), b"1\n0\n0\n");
    // A volume may be selected twice; the file says what was asked.
    assert_eq!(g.bval_file(&[1, 1]).unwrap(), b"1.0e3 1.0e3\n");
}

#[test]
fn rows_of_three_come_out_as_three_rows() {
    let g = grads(
        "0\n1000\n2000\n5\n",
        "0 0 0\r\n1 0 0\r\n0 0.6 -0.8\r\n1 0 0",
        4,
    );
    assert_eq!(
        g.bvec_file(&[0, 1, 2, 3]).unwrap(),
        b"0 1 0 1\n0 0 0.6 0\n0 0 -0.8 0\n"
    );
    assert_eq!(g.bval_file(&[0, 1, 2, 3]).unwrap(), b"0 1000 2000 5\n");
}

#[test]
fn sizes_match_the_files_without_building_them() {
    let g = grads(
        "0 1.0e3 2000.000 NaN",
        "0 1 0 -0.5\n0 0 1E-1 nan\n0 0 0 0.866\n",
        4,
    );
    for vols in [&[][..], &[0], &[3], &[0, 1, 2, 3], &[2, 0, 2]] {
        assert_eq!(
            g.bval_len(vols).unwrap(),
            g.bval_file(vols).unwrap().len() as u64,
            "{vols:?}"
        );
        assert_eq!(
            g.bvec_len(vols).unwrap(),
            g.bvec_file(vols).unwrap().len() as u64,
            "{vols:?}"
        );
    }
    assert_eq!(g.bval_file(&[]).unwrap(), b"\n");
    assert_eq!(g.bvec_file(&[]).unwrap(), b"\n\n\n");
}

#[test]
fn a_volume_past_the_last_is_none() {
    let g = grads("0 1000", "0 1\n0 0\n0 0", 2);
    assert_eq!(g.bval_file(&[0, 2]), None);
    assert_eq!(g.bvec_file(&[5]), None);
    assert_eq!(g.bval_len(&[u64::MAX]), None);
    assert_eq!(g.bvec_len(&[1, 2]), None);
    assert!(g.bval(2).is_none() && g.bvec(u64::MAX).is_none());
}
