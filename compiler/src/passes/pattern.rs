//! Small helpers for fusion passes that match op chains.

use crate::ir::{Graph, Node, ValueId};
use crate::ops::{BinaryOp, Op};
use std::collections::HashMap;

/// A graph with its producer and use-count tables, for matching op chains.
pub struct Matcher<'a> {
    /// The graph being matched.
    pub g: &'a Graph,
    producers: HashMap<ValueId, usize>,
    uses: Vec<usize>,
}

impl<'a> Matcher<'a> {
    /// Builds the tables for `g`.
    pub fn new(g: &'a Graph) -> Self {
        Matcher {
            g,
            producers: g.producers(),
            uses: g.use_counts(),
        }
    }

    /// The node producing `v`, and its index.
    pub fn producer(&self, v: ValueId) -> Option<(usize, &'a Node)> {
        self.producers.get(&v).map(|&i| (i, &self.g.nodes[i]))
    }

    /// The producer of `v` if it is `op` and `v` has exactly `uses` readers (and is not a
    /// graph output): the conditions for folding it into a fused op.
    pub fn inner(&self, v: ValueId, op: &Op, uses: usize) -> Option<(usize, &'a Node)> {
        let (i, n) = self.producer(v)?;
        (n.op == *op && self.uses[v] == uses && !self.g.outputs.contains(&v)).then_some((i, n))
    }

    /// Value of a one-element constant.
    pub fn scalar(&self, v: ValueId) -> Option<f32> {
        self.g
            .konst(v)
            .filter(|t| t.numel() == 1)
            .map(|t| t.get_f64(0) as f32)
    }

    /// For a binary node with one scalar-constant operand: (the other operand, the constant).
    pub fn with_scalar(&self, n: &Node) -> Option<(ValueId, f32)> {
        let (a, b) = (n.inputs.first().copied()??, n.inputs.get(1).copied()??);
        match (self.scalar(a), self.scalar(b)) {
            (_, Some(c)) => Some((a, c)),
            (Some(c), None)
                if matches!(n.op, Op::Binary(BinaryOp::Add) | Op::Binary(BinaryOp::Mul)) =>
            {
                Some((b, c))
            }
            _ => None,
        }
    }

    /// Operands of a commutative binary node, in both orders.
    pub fn operands(&self, n: &Node) -> Option<[(ValueId, ValueId); 2]> {
        let (a, b) = (n.inputs.first().copied()??, n.inputs.get(1).copied()??);
        Some([(a, b), (b, a)])
    }
}

/// For each edit, replaces the nodes it names by its new nodes, placed (in order) where the
/// last removed node was, and drops what became dead. Keeps the topological order: the new
/// nodes' inputs are all defined before the chain's last node.
pub fn replace(g: &mut Graph, mut edits: Vec<(Vec<usize>, Vec<Node>)>) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    let mut at: HashMap<usize, Vec<Node>> = HashMap::new();
    for (nodes, new) in edits.drain(..) {
        let last = *nodes.iter().max().expect("a chain");
        for i in nodes {
            remove[i] = true;
        }
        at.insert(last, new);
    }
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(new) = at.remove(&i) {
            g.nodes.extend(new);
        }
        if !remove[i] {
            g.nodes.push(n);
        }
    }
    g.remove_dead()
}

/// For a pass's summary: the nodes a fusion would have consumed that are still there
/// (`"; 2 ReduceMean left unfused, first 'name'"`), so `gpt2c inspect` names where a
/// pattern broke; empty when there are none.
pub fn leftovers(g: &Graph, what: &str, left: impl Fn(&Node) -> bool) -> String {
    let names: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| left(n))
        .map(|n| n.name.as_str())
        .collect();
    match names.first() {
        None => String::new(),
        Some(first) => format!("; {} {what} left unfused, first '{first}'", names.len()),
    }
}
