//! The data-movement folding passes on hand-built graphs: the interpreter gives the same
//! outputs before and after, and the chains become single copies.

use gpt2c::ir::{DType, Graph, Node, Tensor, TensorType};
use gpt2c::ops::slice::SliceAttrs;
use gpt2c::ops::Op;
use gpt2c::passes::fold_copies::FoldCopies;
use gpt2c::passes::Pass;

fn node(g: &mut Graph, name: &str, op: Op, inputs: &[usize], shapes: &[&[usize]]) -> Vec<usize> {
    let outputs: Vec<usize> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            g.add_value(
                format!("{name}_{k}"),
                Some(TensorType::known(DType::F32, s)),
            )
        })
        .collect();
    g.nodes.push(Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|&i| Some(i)).collect(),
        outputs: outputs.clone(),
    });
    outputs
}

fn ops(g: &Graph, name: &str) -> usize {
    g.nodes.iter().filter(|n| n.op.name() == name).count()
}

/// x [2,6,12] ─► Split(axis 2) ─► Reshape ─► Transpose ─► Slice(step 2) ─► Transpose ─► out0
///                     ├─► out1 (the Split stays for it)
///                     └─► Transpose ─► out2
#[test]
fn chains_of_copies_become_one_strided_copy_each() {
    let mut g = Graph::default();
    let x = g.add_value("x", Some(TensorType::known(DType::F32, &[2, 6, 12])));
    g.inputs.push(x);
    let split = Op::Split {
        axis: 2,
        split: Some(vec![4, 4, 4]),
        outputs: 3,
    };
    let parts = node(&mut g, "split", split, &[x], &[&[2, 6, 4][..]; 3]);
    let shape = g.add_const("shape", Tensor::from_vec(vec![4], vec![2i64, 6, 2, 2]));
    let r = node(
        &mut g,
        "reshape",
        Op::Reshape { allow_zero: false },
        &[parts[1], shape],
        &[&[2, 6, 2, 2]],
    );
    let perm = |p: &[usize]| Op::Transpose {
        perm: Some(p.to_vec()),
    };
    let t = node(&mut g, "t", perm(&[0, 2, 1, 3]), &[r[0]], &[&[2, 2, 6, 2]]);
    let slice = Op::Slice {
        attrs: Some(SliceAttrs {
            starts: vec![1],
            ends: vec![6],
            axes: Some(vec![2]),
        }),
    };
    let s = node(&mut g, "slice", slice, &[t[0]], &[&[2, 2, 5, 2]]);
    let out0 = node(&mut g, "t2", perm(&[3, 2, 1, 0]), &[s[0]], &[&[2, 5, 2, 2]]);
    let out2 = node(&mut g, "t3", perm(&[1, 0, 2]), &[parts[2]], &[&[6, 2, 4]]);
    g.outputs = vec![out0[0], parts[0], out2[0]];
    g.validate().unwrap();

    let input = Tensor::from_vec(
        vec![2, 6, 12],
        (0..144).map(|i| i as f32 * 0.5 - 7.0).collect::<Vec<f32>>(),
    );
    let before = gpt2c::interp::run(&g, &[("x", input.clone())]).unwrap();
    let summary = FoldCopies.run(&mut g).unwrap();
    g.validate().unwrap();
    let after = gpt2c::interp::run(&g, &[("x", input)]).unwrap();
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.shape(), b.shape());
        assert_eq!(
            a.to_vec::<f32>().unwrap(),
            b.to_vec::<f32>().unwrap(),
            "{summary}"
        );
    }
    // out0 and out2 are one copy of x each; the Split stays for out1 only.
    assert_eq!(ops(&g, "StridedCopy"), 2, "{summary}");
    assert_eq!(
        ops(&g, "Transpose") + ops(&g, "Slice") + ops(&g, "Reshape"),
        0
    );
    assert_eq!(ops(&g, "Split"), 1);
    for &o in &[out0[0], out2[0]] {
        let n = g.nodes.iter().find(|n| n.outputs == [o]).unwrap();
        assert_eq!(n.inputs, [Some(x)]);
    }
    // A second run finds nothing more to fold.
    let nodes = g.nodes.len();
    FoldCopies.run(&mut g).unwrap();
    assert_eq!(g.nodes.len(), nodes);
    assert_eq!(ops(&g, "StridedCopy"), 2);
}
