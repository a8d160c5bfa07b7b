//! fuse-gelu recognises GELU by what it computes: GPT-2's tanh form in another node order
//! (x·x·x instead of Pow, the halving last) and the exact erf form both fuse, to `Gelu` and
//! `GeluErf`, and the interpreter gives the same outputs before and after. A near-miss (a
//! wrong constant) is left alone.

use gpt2c::ir::{DType, Graph, Node, Tensor, TensorType};
use gpt2c::ops::{BinaryOp, Op, UnaryOp};
use gpt2c::passes::fuse_gelu::FuseGelu;
use gpt2c::passes::Pass;

const N: usize = 64;

struct Builder {
    g: Graph,
    n: usize,
}

impl Builder {
    fn new() -> (Builder, usize) {
        let mut g = Graph::default();
        let x = g.add_value("x", Some(TensorType::known(DType::F32, &[1, N])));
        g.inputs.push(x);
        (Builder { g, n: 0 }, x)
    }
    fn c(&mut self, v: f32) -> usize {
        self.n += 1;
        self.g.add_const(format!("c{}", self.n), Tensor::scalar(v))
    }
    fn op(&mut self, op: Op, ins: &[usize]) -> usize {
        self.n += 1;
        let name = format!("/mlp/{}_{}", op.name(), self.n);
        let y = self
            .g
            .add_value(&name, Some(TensorType::known(DType::F32, &[1, N])));
        self.g.nodes.push(Node {
            name,
            op,
            inputs: ins.iter().map(|&i| Some(i)).collect(),
            outputs: vec![y],
        });
        y
    }
    fn bin(&mut self, b: BinaryOp, a: usize, c: usize) -> usize {
        self.op(Op::Binary(b), &[a, c])
    }
    fn finish(mut self, y: usize) -> Graph {
        self.g.outputs.push(y);
        self.g
    }
}

/// `0.5·x·(1 + erf(x / divisor))` in five nodes; returns (y, the Erf's output).
fn erf_gelu(b: &mut Builder, x: usize, divisor: f32) -> (usize, usize) {
    use BinaryOp::*;
    let r2 = b.c(divisor);
    let d = b.bin(Div, x, r2);
    let e = b.op(Op::Unary(UnaryOp::Erf), &[d]);
    let one = b.c(1.0);
    let w = b.bin(Add, e, one);
    let half = b.c(0.5);
    let h = b.bin(Mul, half, x);
    (b.bin(Mul, h, w), e)
}

fn fuse(g: &Graph) -> (Graph, String) {
    let mut f = g.clone();
    let summary = FuseGelu.run(&mut f).unwrap();
    f.validate().unwrap();
    let x: Vec<f32> = (0..N).map(|i| (i as f32 - 32.0) * 0.23).collect();
    let input = [("x", Tensor::from_vec(vec![1, N], x))];
    let a = gpt2c::interp::run(g, &input).unwrap();
    let b = gpt2c::interp::run(&f, &input).unwrap();
    let (a, b) = (a[0].to_vec::<f32>().unwrap(), b[0].to_vec::<f32>().unwrap());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() <= 1e-6 * p.abs().max(1.0), "{p} vs {q}");
    }
    (f, summary)
}

#[test]
fn tanh_gelu_in_another_order_fuses() {
    use BinaryOp::*;
    let (mut b, x) = Builder::new();
    let xx = b.bin(Mul, x, x);
    let x3 = b.bin(Mul, xx, x);
    let k = b.c(0.044715);
    let t = b.bin(Mul, k, x3);
    let u = b.bin(Add, x, t);
    let s = b.c((2.0f32 / std::f32::consts::PI).sqrt());
    let v = b.bin(Mul, s, u);
    let th = b.op(Op::Unary(UnaryOp::Tanh), &[v]);
    let one = b.c(1.0);
    let w = b.bin(Add, one, th);
    let xw = b.bin(Mul, x, w);
    let half = b.c(0.5);
    let y = b.bin(Mul, xw, half);
    let (f, summary) = fuse(&b.finish(y));
    assert_eq!(f.nodes.len(), 1, "{summary}: {:?}", f.op_histogram());
    assert_eq!(f.nodes[0].op, Op::Gelu);
}

#[test]
fn erf_gelu_fuses_to_the_exact_form() {
    let (mut b, x) = Builder::new();
    let (y, _) = erf_gelu(&mut b, x, std::f32::consts::SQRT_2);
    let (f, summary) = fuse(&b.finish(y));
    assert!(summary.contains("1 erf"), "{summary}");
    assert_eq!(f.nodes.len(), 1);
    assert_eq!(f.nodes[0].op, Op::GeluErf);
}

#[test]
fn a_wrong_constant_is_not_a_gelu() {
    let (mut b, x) = Builder::new();
    let (y, _) = erf_gelu(&mut b, x, 1.3);
    let (f, summary) = fuse(&b.finish(y));
    assert!(summary.starts_with("0 GELU"), "{summary}");
    // The summary names where the pattern broke.
    assert!(
        summary.contains("1 Tanh/Erf left unfused, first '/mlp/Erf"),
        "{summary}"
    );
    assert_eq!(f.nodes.len(), 5);
}

/// An intermediate value read outside the GELU keeps its nodes: nothing is fused.
#[test]
fn a_shared_intermediate_blocks_the_fusion() {
    let (mut b, x) = Builder::new();
    let (y, e) = erf_gelu(&mut b, x, std::f32::consts::SQRT_2);
    let mut g = b.finish(y);
    g.outputs.push(e);
    let (f, summary) = fuse(&g);
    assert!(summary.starts_with("0 GELU"), "{summary}");
    assert_eq!(f.nodes.len(), 5);
}
