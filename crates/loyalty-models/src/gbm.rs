//! Gradient boosting with log loss on histograms: a fixed number of trees, each grown
//! leaf-wise (best gain first) to a fixed number of leaves, on at most 255 quantile
//! bins per feature plus a bin for missing values, which each split sends to the side
//! that gains more.
//!
//! Why our own booster: its cost is fixed by its settings (trees x leaves x rows), not
//! found by a search at run time, and every sum is taken in one fixed order (a
//! feature's histogram is summed row by row in the leaf's row order, whatever the
//! thread count), so the same rows give the same model to the last bit on every run.
//! It is the LightGBM algorithm without the options we do not use.

use rayon::prelude::*;
use serde::Serialize;

use crate::ModelError;
use crate::churn::Design;

/// The booster's settings; its cost grows linearly in `trees` and in the rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GbmParams {
    pub trees: u32,
    /// Leaves per tree (leaf-wise growth stops there, or when no split gains).
    pub leaves: u32,
    pub learning_rate: f64,
    /// Fewest training rows in a leaf.
    pub min_leaf_rows: u32,
    /// L2 penalty on leaf values (in units of the hessian sum).
    pub l2: f64,
    /// Value bins per feature, at most 255.
    pub bins: u32,
}

impl Default for GbmParams {
    /// LightGBM's defaults where they matter (31 leaves, 20 rows per leaf, 255 bins),
    /// with 300 trees at a learning rate of 0.05 and a light L2 penalty.
    fn default() -> Self {
        GbmParams { trees: 300, leaves: 31, learning_rate: 0.05, min_leaf_rows: 20, l2: 1.0, bins: 255 }
    }
}

impl GbmParams {
    pub fn check(&self) -> Result<(), ModelError> {
        let ok = self.trees >= 1
            && self.leaves >= 2
            && self.learning_rate > 0.0
            && self.learning_rate <= 1.0
            && self.l2 >= 0.0
            && (2..=255).contains(&self.bins);
        if ok {
            Ok(())
        } else {
            Err(ModelError::BadInput(format!(
                "boosting settings out of range: {self:?} (trees >= 1, leaves >= 2, 0 < learning_rate <= 1, l2 >= 0, 2 <= bins <= 255)"
            )))
        }
    }
}

/// Fewest hessian units in a leaf (keeps leaf values finite on pure leaves).
const MIN_HESSIAN: f64 = 1e-3;

/// Sums of gradient, hessian and rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: f64,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }

    fn minus(self, o: Sums) -> Sums {
        Sums { g: self.g - o.g, h: self.h - o.h, n: self.n - o.n }
    }

    /// The loss reduction a leaf with these sums achieves, up to a constant.
    fn score(self, l2: f64) -> f64 {
        self.g * self.g / (self.h + l2)
    }

    fn value(self, l2: f64) -> f64 {
        -self.g / (self.h + l2)
    }
}

/// Quantile bin edges per feature: value v of feature j falls in bin
/// `1 + #(edges[j] < v)`, a missing value in bin 0.
#[derive(Debug, Clone)]
struct Bins {
    edges: Vec<Vec<f64>>,
}

/// The rows of a design a fit learns from: all of them, or those listed (as
/// `d.take(rows)` has them, without copying every value first); and its columns:
/// all of them, or those listed (feature j is then column `columns[j]`).
#[derive(Clone, Copy)]
struct Picked<'a> {
    d: &'a Design,
    rows: Option<&'a [usize]>,
    columns: Option<&'a [usize]>,
}

impl<'a> Picked<'a> {
    fn all(d: &'a Design, rows: Option<&'a [usize]>) -> Picked<'a> {
        Picked { d, rows, columns: None }
    }

    fn len(&self) -> usize {
        self.rows.map_or(self.d.rows, <[usize]>::len)
    }

    fn features(&self) -> usize {
        self.columns.map_or(self.d.columns.len(), <[usize]>::len)
    }

    /// The design's column of feature j.
    fn source(&self, j: usize) -> &'a [f64] {
        &self.d.columns[self.columns.map_or(j, |c| c[j])]
    }

    /// Feature j of the k-th picked row.
    fn value(&self, j: usize, k: usize) -> f64 {
        self.source(j)[self.rows.map_or(k, |rows| rows[k])]
    }

    /// Feature j of every picked row, in order.
    fn column(&self, j: usize) -> std::borrow::Cow<'a, [f64]> {
        let column = self.source(j);
        match self.rows {
            None => std::borrow::Cow::Borrowed(column),
            Some(rows) => std::borrow::Cow::Owned(rows.iter().map(|&i| column[i]).collect()),
        }
    }
}

impl Bins {
    fn fit(x: Picked, bins: usize) -> Bins {
        Bins { edges: (0..x.features()).into_par_iter().map(|j| edges_of(&x.column(j), bins)).collect() }
    }

    fn bin(edges: &[f64], v: f64) -> u8 {
        if v.is_nan() { 0 } else { (1 + edges.partition_point(|e| *e < v)) as u8 }
    }

    /// Every value as its bin number, row by row in rows of `stride` bytes (a row's
    /// bins are adjacent, so one pass over a leaf's rows fills every feature's
    /// histogram; the bytes after the features are 0 and never read).
    fn apply(&self, x: Picked, stride: usize) -> Vec<u8> {
        let mut out = vec![0u8; x.len() * stride];
        out.par_chunks_mut(stride.max(1) * 4_096).enumerate().for_each(|(k, block)| {
            let first = k * 4_096;
            for (i, row) in block.chunks_mut(stride).enumerate() {
                for (j, cell) in row[..x.features()].iter_mut().enumerate() {
                    *cell = Bins::bin(&self.edges[j], x.value(j, first + i));
                }
            }
        });
        out
    }
}

/// At most `bins - 1` edges at the quantiles of (a fixed-stride sample of) the
/// known values; every distinct value its own bin when there are few.
fn edges_of(column: &[f64], bins: usize) -> Vec<f64> {
    let step = (column.len() / 200_000).max(1);
    let mut v: Vec<f64> = column.iter().step_by(step).copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    let mut distinct = v.clone();
    distinct.dedup_by(|a, b| a == b);
    let mut edges =
        if distinct.len() <= bins { distinct } else { (1..bins).map(|i| v[i * v.len() / bins]).collect::<Vec<f64>>() };
    edges.dedup_by(|a, b| a == b);
    // The last value bin needs no upper edge.
    if edges.len() >= bins || edges.last().is_some_and(|e| Some(e) == v.last()) {
        edges.pop();
    }
    edges
}

#[derive(Debug, Clone, Serialize)]
enum Node {
    Leaf {
        value: f64,
    },
    /// Rows with `x[feature] <= threshold` (and missing ones if `missing_left`) go left.
    Split {
        feature: usize,
        threshold: f64,
        missing_left: bool,
        left: usize,
        right: usize,
        /// What the node would predict as a leaf: path attributions are the changes
        /// of this value along a row's path.
        value: f64,
    },
}

#[derive(Debug, Clone, Serialize)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// The tree with the features of its splits numbered as in the design, where the
    /// tree was grown on its columns `columns` (feature j was column `columns[j]`).
    fn features_from(&mut self, columns: &[usize]) {
        for node in &mut self.nodes {
            if let Node::Split { feature, .. } = node {
                *feature = columns[*feature];
            }
        }
    }

    fn node_value(&self, at: usize) -> f64 {
        match &self.nodes[at] {
            Node::Leaf { value } | Node::Split { value, .. } => *value,
        }
    }
}

/// A node of [`Steps`].
#[derive(Debug, Clone, Copy)]
struct Step {
    threshold: f64,
    /// What a row adds to its log-odds going left or right: the value of the leaf
    /// it steps onto (a split's leaf children are folded into it), else nothing.
    adds: [f64; 2],
    /// The change of the node value from this node to its left and to its right
    /// child: a row's attribution to the split feature.
    up: [f64; 2],
    /// The left and the right child; from a leaf, the next tree's root (or the end).
    next: [u32; 2],
    feature: u32,
    missing_left: bool,
}

/// Every tree's nodes in one array, laid out for scoring: a step reads one small
/// node, where a [`Node`] is an enum twice its size, and the attribution of each step
/// is subtracted once here instead of once per row (the same subtraction, so the same
/// bits). The trees are chained: a split whose child is a leaf adds the leaf's value
/// and steps on to the next tree's root (the last tree's to the end, which steps to
/// itself and adds nothing), so a row never spends a step on a leaf (a tree of one
/// leaf is a step of its own, both ways alike). So
/// a row walks every tree in one run of steps and never waits for the other rows of its
/// block to reach their leaves, which they do at different depths in every tree.
struct Steps {
    steps: Vec<Step>,
    /// The first tree's root.
    start: u32,
    /// The step after the last tree.
    end: u32,
}

impl Steps {
    fn of(trees: &[Tree]) -> Steps {
        let mut roots = Vec::with_capacity(trees.len() + 1);
        let mut total = 0;
        for tree in trees {
            roots.push(total as u32);
            total += tree.nodes.len();
        }
        let end = total as u32;
        roots.push(end);
        let mut steps = Vec::with_capacity(total + 1);
        for (t, tree) in trees.iter().enumerate() {
            // Where a row goes from a split to `child`, and what it adds on the way.
            let onto = |child: usize| match tree.nodes[child] {
                Node::Leaf { value } => (roots[t + 1], value),
                Node::Split { .. } => (roots[t] + child as u32, 0.0),
            };
            for (k, node) in tree.nodes.iter().enumerate() {
                steps.push(match *node {
                    // Reached only as a tree's root: both sides lead on, without attribution.
                    Node::Leaf { value } => Step {
                        threshold: 0.0,
                        adds: [value; 2],
                        up: [0.0; 2],
                        next: [roots[t + 1]; 2],
                        feature: 0,
                        missing_left: false,
                    },
                    Node::Split { feature, threshold, missing_left, left, right, .. } => {
                        let ((left_next, left_adds), (right_next, right_adds)) = (onto(left), onto(right));
                        Step {
                            threshold,
                            adds: [left_adds, right_adds],
                            up: [
                                tree.node_value(left) - tree.node_value(k),
                                tree.node_value(right) - tree.node_value(k),
                            ],
                            next: [left_next, right_next],
                            feature: feature as u32,
                            missing_left,
                        }
                    }
                });
            }
        }
        steps.push(Step {
            threshold: 0.0,
            adds: [0.0; 2],
            up: [0.0; 2],
            next: [end; 2],
            feature: 0,
            missing_left: false,
        });
        Steps { steps, start: roots[0], end }
    }

    /// The log-odds of each of the rows `xs` (row-major, `p` values each, at most
    /// [`LANES`] rows) from `base`, with each row's attribution terms added to its `p`
    /// cells of `terms` when asked for. The rows walk side by side: one row's steps wait
    /// on each other (node, value, comparison, next node), the rows' do not. Each row's
    /// sums run in the same order as alone, and the zeros a row adds between its leaves
    /// leave each sum as it was: x + 0 is x for every x but -0, which the terms never
    /// are (they start at +0) and log-odds of exactly -0 would turn into +0, the same
    /// probability.
    fn raw(&self, base: f64, xs: &[f64], p: usize, mut terms: Option<&mut [f64]>) -> [f64; LANES] {
        let rows = xs.len() / p.max(1);
        let mut raw = [base; LANES];
        let mut at = [self.start as usize; LANES];
        let end = self.end as usize;
        loop {
            let mut walking = false;
            for lane in 0..rows {
                walking |= at[lane] != end;
                let s = &self.steps[at[lane]];
                let feature = s.feature as usize;
                let v = xs[lane * p + feature];
                // Without branches: which way a row goes is as good as random to a predictor.
                let left = (v <= s.threshold) | (v.is_nan() & s.missing_left);
                let side = usize::from(!left);
                raw[lane] += s.adds[side];
                if let Some(terms) = terms.as_deref_mut() {
                    terms[lane * p + feature] += s.up[side];
                }
                at[lane] = s.next[side] as usize;
            }
            if !walking {
                return raw;
            }
        }
    }
}

/// Rows that walk the trees side by side in [`Steps::raw`].
const LANES: usize = 8;

/// Rows `rows` of `d` copied into `xs`, row-major: the trees read each row many times,
/// and a row's values lie one column apart in `d`.
fn rows_into(d: &Design, rows: std::ops::Range<usize>, xs: &mut Vec<f64>) {
    xs.clear();
    for r in rows {
        xs.extend(d.columns.iter().map(|column| column[r]));
    }
}

/// `f` of each block of up to [`LANES`] rows of `d`, in parallel, the blocks' results
/// in row order.
fn per_lanes<T: Send>(d: &Design, f: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let blocks = d.rows.div_ceil(LANES);
    let per_block: Vec<Vec<T>> = (0..blocks)
        .into_par_iter()
        .with_min_len(SCORE_CHUNK / LANES)
        .map(|k| f(k * LANES..((k + 1) * LANES).min(d.rows)))
        .collect();
    per_block.into_iter().flatten().collect()
}

/// The best split of a leaf.
#[derive(Debug, Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    /// Value bins 1..=bin go left.
    bin: usize,
    missing_left: bool,
    left: Sums,
}

/// A leaf of the tree being grown: its rows are `start..end` of the [`LeafOrdered`] rows.
struct Open {
    node: usize,
    /// The copy of the [`LeafOrdered`] rows that holds the leaf's rows in order.
    copy: usize,
    start: usize,
    end: usize,
    sums: Sums,
    hist: Vec<Sums>,
    best: Option<Split>,
}

/// Gradient boosting with log loss (see the module notes).
#[derive(Debug, Clone, Serialize)]
pub struct Gbm {
    pub names: Vec<String>,
    pub params: GbmParams,
    base: f64,
    trees: Vec<Tree>,
    /// Total split gain per feature.
    gain: Vec<f64>,
}

/// Work (row-feature updates plus histogram cells) below which a leaf is handled on
/// one thread: handing a small leaf to the pool costs more than it saves.
const PARALLEL_WORK: usize = 1 << 20;
/// Fewest features per task: each task sums, subtracts and searches its block of
/// features, reading each of the leaf's rows once.
const MIN_BLOCK: usize = 8;

/// What is kept from tree to tree: histograms (one per open leaf) and the root's row
/// counts.
#[derive(Default)]
struct Scratch {
    free: Vec<Vec<Sums>>,
    /// The row count of each cell of the root's histogram (see [`Grower::root`]).
    root_counts: Vec<f64>,
}

impl Scratch {
    fn histogram(&mut self, cells: usize) -> Vec<Sums> {
        self.free.pop().unwrap_or_else(|| vec![Sums::default(); cells])
    }
}

/// The better of two split candidates, `a` from the lower features: `b` only if it
/// gains strictly more, so ties keep the lower feature whatever the block size.
fn better(a: Option<Split>, b: Option<Split>) -> Option<Split> {
    match (a, b) {
        (Some(x), Some(y)) if y.gain > x.gain => Some(y),
        (None, y) => y,
        (x, _) => x,
    }
}

/// What a training row carries besides its bins: the label, the log-odds so far and
/// the log-loss gradient and hessian there. One record, so a split moves it at once.
#[derive(Debug, Clone, Copy, Default)]
struct Target {
    y: f64,
    score: f64,
    g: f64,
    h: f64,
}

/// The training rows kept in leaf order: each open leaf's rows are one range of every
/// array, so a histogram reads its rows' bins and gradients in sequence. Reading them
/// through a list of row numbers instead missed the cache on nearly every row, and
/// that was most of a fit's time. Splitting a leaf moves its rows (stably: left rows
/// first, each side in its order), so every sum runs in the same row order as before.
///
/// The rows are kept twice: a split reads its leaf's rows from one copy and writes
/// its children's into the same range of the other, so it moves each row once, where
/// reordering within one copy would first copy the leaf's rows aside.
struct LeafOrdered {
    /// Bytes per row: the features rounded up to whole [`ROW_CHUNK`]s, so that a split
    /// moves a row as a few fixed-size copies (a copy of a length known only at run
    /// time is a call to `memcpy` per row, which took a fit longer than the moves).
    stride: usize,
    /// Bin numbers, row-major: the i-th row's are `binned[c][i * stride..][..features]`
    /// in copy c.
    binned: [Vec<u8>; 2],
    targets: [Vec<Target>; 2],
}

/// A row of bins is moved in pieces of this many bytes.
const ROW_CHUNK: usize = 16;

impl LeafOrdered {
    fn new(bins: &Bins, x: Picked, y: &[f64], base: f64) -> LeafOrdered {
        let stride = x.features().next_multiple_of(ROW_CHUNK);
        let targets: Vec<Target> = y.iter().map(|&y| Target { y, score: base, ..Target::default() }).collect();
        let binned = bins.apply(x, stride);
        LeafOrdered { stride, binned: [binned.clone(), binned], targets: [targets.clone(), targets] }
    }

    fn len(&self) -> usize {
        self.targets[0].len()
    }

    /// The bins of rows `range` in copy `c`, `stride` bytes each.
    fn rows(&self, c: usize, range: std::ops::Range<usize>) -> &[u8] {
        &self.binned[c][range.start * self.stride..range.end * self.stride]
    }

    /// Rows `start..end` of copy `from` written into the same range of the other copy:
    /// the `left` rows that `goes_left` first, then the others, each in their order;
    /// returns where the right rows start. The split's sums counted its left rows, so
    /// one pass places every row where it belongs, bins and target together.
    fn partition(
        &mut self,
        from: usize,
        (start, end): (usize, usize),
        left: usize,
        goes_left: impl Fn(&[u8]) -> bool,
    ) -> usize {
        let w = self.stride / ROW_CHUNK;
        let [b0, b1] = &mut self.binned;
        let [t0, t1] = &mut self.targets;
        let (src, dst, t_src, t_dst) = if from == 0 { (b0, b1, t0, t1) } else { (b1, b0, t1, t0) };
        let moved_left = move_rows(
            (&mut dst.as_chunks_mut::<ROW_CHUNK>().0[start * w..end * w], &mut t_dst[start..end]),
            (&src.as_chunks::<ROW_CHUNK>().0[start * w..end * w], &t_src[start..end]),
            w,
            goes_left,
            left,
        );
        assert_eq!(moved_left, left, "a split's row count is the number of its rows that go left");
        start + left
    }

    /// Rows `range` of copy 1 copied into copy 0, where the next tree starts.
    fn bring_back(&mut self, range: std::ops::Range<usize>) {
        let bytes = range.start * self.stride..range.end * self.stride;
        let [b0, b1] = &mut self.binned;
        b0[bytes.clone()].copy_from_slice(&b1[bytes]);
        let [t0, t1] = &mut self.targets;
        t0[range.clone()].copy_from_slice(&t1[range]);
    }

    /// Each row's log-loss gradient and hessian at its current log-odds (copy 0,
    /// where every tree starts).
    fn gradients(&mut self) {
        self.targets[0].par_iter_mut().with_min_len(SCORE_CHUNK).for_each(|t| {
            let p = sigmoid(t.score);
            t.g = p - t.y;
            t.h = (p * (1.0 - p)).max(1e-16);
        });
    }
}

/// Rows of `width` chunks and their targets reordered from `before` (their order
/// before): the rows that `goes_left` first, from the start, then the others from
/// `left` on, each side in its order; returns how many went left. One pass, without a
/// branch on the side; rows up to 128 bytes are moved as arrays of a size known when
/// compiling, a few register moves each.
fn move_rows<T: Copy>(
    (items, targets): (&mut [[u8; ROW_CHUNK]], &mut [T]),
    (before, targets_before): (&[[u8; ROW_CHUNK]], &[T]),
    width: usize,
    goes_left: impl Fn(&[u8]) -> bool,
    left: usize,
) -> usize {
    fn fixed<const W: usize, T: Copy>(
        (items, targets): (&mut [[u8; ROW_CHUNK]], &mut [T]),
        (before, targets_before): (&[[u8; ROW_CHUNK]], &[T]),
        goes_left: impl Fn(&[u8]) -> bool,
        left: usize,
    ) -> usize {
        let items = items.as_chunks_mut::<W>().0;
        let mut at = [left, 0];
        for (row, t) in before.as_chunks::<W>().0.iter().zip(targets_before) {
            let side = usize::from(goes_left(row.as_flattened()));
            items[at[side]] = *row;
            targets[at[side]] = *t;
            at[side] += 1;
        }
        at[1]
    }
    let (to, from) = ((items, targets), (before, targets_before));
    match width {
        1 => fixed::<1, T>(to, from, goes_left, left),
        2 => fixed::<2, T>(to, from, goes_left, left),
        3 => fixed::<3, T>(to, from, goes_left, left),
        4 => fixed::<4, T>(to, from, goes_left, left),
        5 => fixed::<5, T>(to, from, goes_left, left),
        6 => fixed::<6, T>(to, from, goes_left, left),
        7 => fixed::<7, T>(to, from, goes_left, left),
        8 => fixed::<8, T>(to, from, goes_left, left),
        _ => {
            let ((items, targets), (before, targets_before)) = (to, from);
            let mut at = [left, 0];
            for (row, t) in before.chunks_exact(width).zip(targets_before) {
                let side = usize::from(goes_left(row.as_flattened()));
                items[at[side] * width..(at[side] + 1) * width].copy_from_slice(row);
                targets[at[side]] = *t;
                at[side] += 1;
            }
            at[1]
        }
    }
}

/// What growing trees needs besides the rows.
struct Grower<'a> {
    features: usize,
    edges: &'a [Vec<f64>],
    /// Feature j's histogram cells are `cells[j]..cells[j + 1]`: its missing bin and
    /// its value bins, so a feature with few values costs few cells.
    cells: Vec<usize>,
    /// Features per block: one block per thread. The blocks only decide who sums
    /// which cells, never the order of a sum, so they do not change the model.
    block_width: usize,
    p: GbmParams,
}

impl<'a> Grower<'a> {
    fn new(features: usize, edges: &'a [Vec<f64>], p: GbmParams) -> Grower<'a> {
        let mut cells = vec![0];
        for e in edges {
            cells.push(cells.last().copied().unwrap_or(0) + e.len() + 2);
        }
        let block_width = features.div_ceil(rayon::current_num_threads()).max(MIN_BLOCK);
        Grower { features, edges, cells, block_width, p }
    }

    /// The features of block k.
    fn block(&self, k: usize) -> std::ops::Range<usize> {
        k * self.block_width..((k + 1) * self.block_width).min(self.features)
    }

    /// A histogram cut into its blocks' cells.
    fn blocks<'h>(&self, mut hist: &'h mut [Sums]) -> Vec<&'h mut [Sums]> {
        let blocks = self.features.div_ceil(self.block_width);
        let mut out = Vec::with_capacity(blocks);
        for k in 0..blocks {
            let f = self.block(k);
            let (head, tail) = hist.split_at_mut(self.cells[f.end] - self.cells[f.start]);
            out.push(head);
            hist = tail;
        }
        out
    }

    /// Block k's histogram over the rows `range`, written over `h`: each cell summed in
    /// row order. A row's updates go to different features' cells, so they do not wait
    /// for each other. Without `COUNT` the cells' row counts are left at 0.
    fn fill<const COUNT: bool>(
        &self,
        k: usize,
        (rows, c): (&LeafOrdered, usize),
        range: std::ops::Range<usize>,
        h: &mut [Sums],
    ) {
        h.fill(Sums::default());
        let f = self.block(k);
        let base = self.cells[f.start];
        let offsets: Vec<usize> = self.cells[f.clone()].iter().map(|c| c - base).collect();
        for (row, t) in rows.rows(c, range.clone()).chunks_exact(rows.stride).zip(&rows.targets[c][range]) {
            // Read once per row: the compiler cannot tell that the cells' stores leave them be.
            let (g, hess) = (t.g, t.h);
            for (&o, &b) in offsets.iter().zip(&row[f.clone()]) {
                let cell = &mut h[o + b as usize];
                cell.g += g;
                cell.h += hess;
                if COUNT {
                    cell.n += 1.0;
                }
            }
        }
    }

    fn allowed(&self, s: Sums) -> bool {
        s.n >= f64::from(self.p.min_leaf_rows) && s.h >= MIN_HESSIAN
    }

    /// The best split over block k's features, `h` its cells (ties: the lower
    /// feature, then the lower bin, then missing values right).
    fn best_split(&self, k: usize, h: &[Sums], total: Sums) -> Option<Split> {
        let parent = total.score(self.p.l2);
        let min_rows = f64::from(self.p.min_leaf_rows);
        let base = self.cells[self.block(k).start];
        let mut best: Option<Split> = None;
        for j in self.block(k) {
            let h = &h[self.cells[j] - base..self.cells[j + 1] - base];
            // The last value bin is never a split point: every value would go left.
            let value_bins = h.len() - 1;
            // Without missing values both directions give the same gains, and ties keep
            // the first: missing values right.
            let directions: &[bool] = if h[0].n > 0.0 { &[false, true] } else { &[false] };
            for &missing_left in directions {
                let mut left = if missing_left { h[0] } else { Sums::default() };
                for (b, cell) in h.iter().enumerate().take(value_bins).skip(1) {
                    left.add(*cell);
                    let right = total.minus(left);
                    // Row counts are exact, and the right side only loses rows from here.
                    if right.n < min_rows {
                        break;
                    }
                    if !self.allowed(left) || !self.allowed(right) {
                        continue;
                    }
                    let gain = left.score(self.p.l2) + right.score(self.p.l2) - parent;
                    if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                        best = Some(Split { gain, feature: j, bin: b, missing_left, left });
                    }
                }
            }
        }
        best
    }

    /// Runs `task` on every block, on the pool when the leaf is big enough, and
    /// combines the blocks' results in block order.
    fn per_block<T: Send>(
        &self,
        rows: usize,
        tasks: Vec<(usize, T)>,
        task: impl Fn(usize, T) -> (Option<Split>, Option<Split>) + Sync,
    ) -> (Option<Split>, Option<Split>) {
        let results: Vec<(Option<Split>, Option<Split>)> =
            if rows * self.features + self.cells[self.features] >= PARALLEL_WORK {
                tasks.into_par_iter().map(|(k, t)| task(k, t)).collect()
            } else {
                tasks.into_iter().map(|(k, t)| task(k, t)).collect()
            };
        results.into_iter().fold((None, None), |(a, b), (x, y)| (better(a, x), better(b, y)))
    }

    /// The histogram of every row and the best split of the root.
    ///
    /// The root holds every row in every tree, so its row counts are the same in every
    /// tree: `counts` holds them from the first tree on, and the later trees sum only
    /// the gradients and hessians.
    fn root(&self, rows: &LeafOrdered, hist: &mut [Sums], counts: &mut Vec<f64>) -> (Sums, Option<Split>) {
        let n = rows.len();
        let counted = !counts.is_empty();
        let tasks: Vec<(usize, &mut [Sums])> = self.blocks(hist).into_iter().enumerate().collect();
        self.per_block(n, tasks, |k, h| {
            if counted {
                self.fill::<false>(k, (rows, 0), 0..n, h);
            } else {
                self.fill::<true>(k, (rows, 0), 0..n, h);
            }
            (None, None)
        });
        if counted {
            hist.iter_mut().zip(counts.iter()).for_each(|(cell, &n)| cell.n = n);
        } else {
            counts.extend(hist.iter().map(|cell| cell.n));
        }
        // The search needs the root's total: every feature's cells sum to it.
        let total = hist[..self.cells[1]].iter().fold(Sums::default(), |mut s, c| {
            s.add(*c);
            s
        });
        let tasks: Vec<(usize, &mut [Sums])> = self.blocks(hist).into_iter().enumerate().collect();
        let (best, _) = self.per_block(n, tasks, |k, h| (self.best_split(k, h, total), None));
        (total, best)
    }

    /// The smaller child's histogram summed into `small`, the larger's left in
    /// `parent` (the parent minus the smaller), and the best split of each.
    fn children(
        &self,
        rows: (&LeafOrdered, usize),
        small_rows: std::ops::Range<usize>,
        small: &mut [Sums],
        parent: &mut [Sums],
        sums: (Sums, Sums),
    ) -> (Option<Split>, Option<Split>) {
        let tasks: Vec<_> = self.blocks(small).into_iter().zip(self.blocks(parent)).enumerate().collect();
        self.per_block(small_rows.len(), tasks, |k, (s, p)| {
            self.fill::<true>(k, rows, small_rows.clone(), s);
            p.iter_mut().zip(s.iter()).for_each(|(p, s)| *p = p.minus(*s));
            (self.best_split(k, s, sums.0), self.best_split(k, p, sums.1))
        })
    }

    /// One tree on the rows' current gradients; the rows end grouped by leaf, and each
    /// leaf's rows get its value added to their score.
    fn tree(&self, rows: &mut LeafOrdered, gain: &mut [f64], scratch: &mut Scratch) -> Tree {
        let l2 = self.p.l2;
        let lr = self.p.learning_rate;
        let cells = self.cells[self.features];
        let mut hist = scratch.histogram(cells);
        let (sums, best) = self.root(rows, &mut hist, &mut scratch.root_counts);
        let mut nodes = vec![Node::Leaf { value: sums.value(l2) * lr }];
        let mut open = vec![Open { node: 0, copy: 0, start: 0, end: rows.len(), sums, hist, best }];
        while open.len() < self.p.leaves as usize {
            // The open leaf with the largest gain (ties: the first).
            let Some((k, split)) = open.iter().enumerate().filter_map(|(k, o)| o.best.map(|s| (k, s))).fold(
                None,
                |acc: Option<(usize, Split)>, (k, s)| match acc {
                    Some((_, b)) if b.gain >= s.gain => acc,
                    _ => Some((k, s)),
                },
            ) else {
                break;
            };
            let leaf = open.swap_remove(k);
            gain[split.feature] += split.gain;
            let goes_left = |bins: &[u8]| match bins[split.feature] as usize {
                0 => split.missing_left,
                b => b <= split.bin,
            };
            let mid = rows.partition(leaf.copy, (leaf.start, leaf.end), split.left.n as usize, goes_left);
            let copy = 1 - leaf.copy;
            let right_sums = leaf.sums.minus(split.left);
            let (l, r) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::Leaf { value: split.left.value(l2) * lr });
            nodes.push(Node::Leaf { value: right_sums.value(l2) * lr });
            nodes[leaf.node] = Node::Split {
                feature: split.feature,
                threshold: self.edges[split.feature][split.bin - 1],
                missing_left: split.missing_left,
                left: l,
                right: r,
                value: leaf.sums.value(l2) * lr,
            };
            // Sum the smaller child; the larger is the parent minus it, in the parent's buffer.
            let left_smaller = mid - leaf.start <= leaf.end - mid;
            let small_rows = if left_smaller { leaf.start..mid } else { mid..leaf.end };
            let (small_sums, large_sums) =
                if left_smaller { (split.left, right_sums) } else { (right_sums, split.left) };
            let mut small = scratch.histogram(cells);
            let mut large = leaf.hist;
            let (small_best, large_best) =
                self.children((rows, copy), small_rows, &mut small, &mut large, (small_sums, large_sums));
            let ((lh, lb), (rh, rb)) = if left_smaller {
                ((small, small_best), (large, large_best))
            } else {
                ((large, large_best), (small, small_best))
            };
            open.push(Open { node: l, copy, start: leaf.start, end: mid, sums: split.left, hist: lh, best: lb });
            open.push(Open { node: r, copy, start: mid, end: leaf.end, sums: right_sums, hist: rh, best: rb });
        }
        for o in open {
            let Node::Leaf { value } = nodes[o.node] else { unreachable!("open leaves are leaves") };
            if o.copy == 1 {
                rows.bring_back(o.start..o.end);
            }
            for t in &mut rows.targets[0][o.start..o.end] {
                t.score += value;
            }
            scratch.free.push(o.hist);
        }
        Tree { nodes }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Fewest rows scored per task: enough to amortise handing the task to a thread.
const SCORE_CHUNK: usize = 1_024;

impl Gbm {
    pub fn fit(d: &Design, y: &[f64], p: &GbmParams) -> Result<Gbm, ModelError> {
        Gbm::fit_picked(Picked::all(d, None), y, p)
    }

    /// [`Gbm::fit`] on rows `rows` of `d` (`y`: their labels): the model
    /// `fit(&d.take(rows), y, p)` gives, without a copy of the rows' values, which
    /// the fit would hold to its end (it reads the values once, into bins).
    pub fn fit_rows(d: &Design, rows: &[usize], y: &[f64], p: &GbmParams) -> Result<Gbm, ModelError> {
        if rows.iter().any(|&r| r >= d.rows) {
            return Err(ModelError::BadInput(format!("boosting: a row number beyond the design's {} rows", d.rows)));
        }
        Gbm::fit_picked(Picked::all(d, Some(rows)), y, p)
    }

    fn fit_picked(x: Picked, y: &[f64], p: &GbmParams) -> Result<Gbm, ModelError> {
        p.check()?;
        let (n, features) = (x.len(), x.features());
        if n == 0 || features == 0 || y.len() != n || n > u32::MAX as usize {
            return Err(ModelError::BadInput(format!(
                "boosting: {n} rows, {features} features and {} labels",
                y.len()
            )));
        }
        let started = std::time::Instant::now();
        let bins = Bins::fit(x, p.bins as usize);
        // A feature without bin edges (one value, or none) never splits: the trees grow
        // on the others alone, the same trees, without a histogram of it per leaf. The
        // first feature stays whatever its edges: the root's sums are its cells' sum,
        // and another feature's cells would sum the same rows in another order.
        let splittable: Vec<usize> = (0..features).filter(|&j| j == 0 || !bins.edges[j].is_empty()).collect();
        let kept = Bins { edges: splittable.iter().map(|&j| bins.edges[j].clone()).collect() };
        let grower = Grower::new(splittable.len(), &kept.edges, *p);
        let rate = (y.iter().sum::<f64>() / y.len() as f64).clamp(1e-9, 1.0 - 1e-9);
        let base = (rate / (1.0 - rate)).ln();
        let mut rows = LeafOrdered::new(&kept, Picked { columns: Some(&splittable), ..x }, y, base);
        let mut kept_gain = vec![0.0; splittable.len()];
        let mut trees = Vec::with_capacity(p.trees as usize);
        let mut scratch = Scratch::default();
        for _ in 0..p.trees {
            rows.gradients();
            let mut tree = grower.tree(&mut rows, &mut kept_gain, &mut scratch);
            tree.features_from(&splittable);
            trees.push(tree);
        }
        let mut gain = vec![0.0; features];
        for (&j, g) in splittable.iter().zip(kept_gain) {
            gain[j] = g;
        }
        tracing::debug!(
            "boosting: {} trees of up to {} leaves on {} rows x {} features in {:.1}s",
            trees.len(),
            p.leaves,
            n,
            features,
            started.elapsed().as_secs_f64()
        );
        Ok(Gbm { names: x.d.names.clone(), params: *p, base, trees, gain })
    }

    /// Each feature's share of the total gain of every split (the shares sum to 1),
    /// largest first.
    pub fn importance(&self) -> Vec<(String, f32)> {
        let total: f64 = self.gain.iter().sum::<f64>().max(1e-300);
        let mut shares: Vec<(String, f32)> =
            self.names.iter().zip(&self.gain).map(|(n, g)| (n.clone(), (g / total) as f32)).collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        shares
    }

    /// The log-odds of each row.
    pub fn raw(&self, d: &Design) -> Vec<f64> {
        let steps = Steps::of(&self.trees);
        let p = d.columns.len();
        per_lanes(d, |rows| {
            let mut xs = Vec::with_capacity(LANES * p);
            let n = rows.len();
            rows_into(d, rows, &mut xs);
            steps.raw(self.base, &xs, p, None)[..n].to_vec()
        })
    }

    /// P(y = 1) of each row.
    pub fn predict(&self, d: &Design) -> Vec<f64> {
        self.raw(d).into_iter().map(sigmoid).collect()
    }

    /// Each row's log-odds split into one term per feature (the changes of the node
    /// values along its path through every tree, Saabas' attribution); the terms and
    /// the bias sum to [`Gbm::raw`].
    pub fn contributions(&self, d: &Design) -> Vec<Vec<f64>> {
        let steps = Steps::of(&self.trees);
        let p = d.columns.len();
        per_lanes(d, |rows| {
            let mut xs = Vec::with_capacity(LANES * p);
            rows_into(d, rows, &mut xs);
            let mut terms = vec![0.0; xs.len()];
            steps.raw(self.base, &xs, p, Some(&mut terms));
            terms.chunks(p.max(1)).map(<[f64]>::to_vec).collect()
        })
    }

    /// For each row, the features that push its churn score up most (largest
    /// positive contributions to the log-odds), at most `k`.
    pub fn reasons(&self, d: &Design, k: usize) -> Vec<Vec<String>> {
        self.contributions(d)
            .iter()
            .map(|row| top_terms(row, k).into_iter().map(|j| self.names[j].clone()).collect())
            .collect()
    }

    /// [`Gbm::predict`] and [`Gbm::reasons`] (as feature indices) of every row in one
    /// walk of each tree per row, without a row's terms outliving it: scoring millions
    /// of customers walked every tree twice and kept every row's terms.
    pub fn predict_with_reasons(&self, d: &Design, k: usize) -> (Vec<f64>, Vec<Vec<usize>>) {
        let steps = Steps::of(&self.trees);
        let p = d.columns.len();
        per_lanes(d, |rows| {
            let mut xs = Vec::with_capacity(LANES * p);
            rows_into(d, rows, &mut xs);
            let mut terms = vec![0.0; xs.len()];
            let raw = steps.raw(self.base, &xs, p, Some(&mut terms));
            terms.chunks(p.max(1)).zip(raw).map(|(t, z)| (sigmoid(z), top_terms(t, k))).collect()
        })
        .into_iter()
        .unzip()
    }

    /// The name of feature `j`.
    pub fn feature_name(&self, j: usize) -> &str {
        &self.names[j]
    }

    /// The number of trees (fixed by the settings).
    pub fn trees(&self) -> usize {
        self.trees.len()
    }
}

/// The indices of the `k` largest positive terms, largest first (ties: the lower feature).
fn top_terms(terms: &[f64], k: usize) -> Vec<usize> {
    let mut top: Vec<usize> = Vec::with_capacity(k + 1);
    for (j, t) in terms.iter().enumerate().filter(|(_, t)| **t > 0.0) {
        let at = top.iter().position(|&i| terms[i] < *t).unwrap_or(top.len());
        if at < k {
            top.insert(at, j);
            top.truncate(k);
        }
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::churn::roc_auc;

    /// A seeded stream of uniforms in [0, 1).
    fn uniforms(seed: u64) -> impl Iterator<Item = f64> {
        let mut s = seed;
        std::iter::from_fn(move || {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            Some((s >> 11) as f64 / (1u64 << 53) as f64)
        })
    }

    /// y = 1 with probability sigmoid(4 * [x0 > 0.5] - 2 + 2 * x1), x2 noise, some x1 missing.
    fn step_data(n: usize, seed: u64) -> (Design, Vec<f64>, Vec<f64>) {
        let mut u = uniforms(seed);
        let (mut x0, mut x1, mut x2, mut y, mut truth) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (a, b, c) = (u.next().unwrap(), u.next().unwrap(), u.next().unwrap());
            let logit = 4.0 * f64::from(u8::from(a > 0.5)) - 2.0 + 2.0 * b;
            let p = sigmoid(logit);
            truth.push(p);
            y.push(f64::from(u8::from(u.next().unwrap() < p)));
            x0.push(a);
            x1.push(if c < 0.1 { f64::NAN } else { b });
            x2.push(c);
        }
        let d = Design::new(vec!["x0".into(), "x1".into(), "x2".into()], vec![x0, x1, x2]).unwrap();
        (d, y, truth)
    }

    #[test]
    fn features_that_cannot_split_change_no_tree() {
        let (d, y, _) = step_data(5_000, 4);
        // The same rows with a constant column and an empty one between the features.
        let mut names = d.names.clone();
        let mut columns = d.columns.clone();
        names.insert(1, "constant".into());
        columns.insert(1, vec![3.0; d.rows]);
        names.insert(3, "empty".into());
        columns.insert(3, vec![f64::NAN; d.rows]);
        let wide = Design::new(names, columns).unwrap();
        let p = GbmParams { trees: 30, ..GbmParams::default() };
        let narrow = Gbm::fit(&d, &y, &p).unwrap();
        let m = Gbm::fit(&wide, &y, &p).unwrap();
        let bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(m.raw(&wide)), bits(narrow.raw(&d)));
        let gain = |m: &Gbm, name: &str| m.names.iter().position(|n| n == name).map(|j| m.gain[j]);
        for name in ["x0", "x1", "x2"] {
            assert_eq!(gain(&m, name).map(f64::to_bits), gain(&narrow, name).map(f64::to_bits), "{name}");
        }
        assert_eq!((gain(&m, "constant"), gain(&m, "empty")), (Some(0.0), Some(0.0)));
        // The attributions are the narrow model's, with zeros in the two new columns.
        let (a, b) = (m.contributions(&wide), narrow.contributions(&d));
        for (row, want) in a.iter().zip(&b) {
            let without: Vec<f64> = [0, 2, 4].iter().map(|&j| row[j]).collect();
            assert_eq!(bits(without), bits(want.clone()));
            assert_eq!((row[1], row[3]), (0.0, 0.0));
        }
    }

    #[test]
    fn edges_are_quantiles_or_every_distinct_value() {
        assert_eq!(edges_of(&[3.0, 1.0, 2.0, 1.0, f64::NAN], 255), vec![1.0, 2.0]);
        let many: Vec<f64> = (0..1000).map(f64::from).collect();
        let e = edges_of(&many, 4);
        assert_eq!(e, vec![250.0, 500.0, 750.0]);
        let edges = vec![1.0, 2.0];
        assert_eq!(Bins::bin(&edges, f64::NAN), 0);
        assert_eq!(Bins::bin(&edges, 0.5), 1);
        assert_eq!(Bins::bin(&edges, 1.0), 1);
        assert_eq!(Bins::bin(&edges, 1.5), 2);
        assert_eq!(Bins::bin(&edges, 3.0), 3);
    }

    #[test]
    fn one_split_finds_the_step_and_its_log_odds() {
        // y = 1 exactly when x > 0: a stump with no penalty and learning rate 1
        // puts the leaves at the log-odds of each side's rate after one Newton step.
        let x: Vec<f64> = (0..200).map(|i| f64::from(i) - 100.0).collect();
        let y: Vec<f64> = x.iter().map(|v| f64::from(u8::from(*v > 0.0))).collect();
        let d = Design::new(vec!["x".into()], vec![x]).unwrap();
        let p = GbmParams { trees: 1, leaves: 2, learning_rate: 1.0, min_leaf_rows: 1, l2: 0.0, bins: 255 };
        let m = Gbm::fit(&d, &y, &p).unwrap();
        let Node::Split { threshold, .. } = m.trees[0].nodes[0] else { panic!("no split") };
        assert_eq!(threshold, 0.0);
        // base log-odds 99/200 ~ -0.02; Newton step on the left (all 0): -g/h = -p/(p(1-p)) = -1/(1-p)
        let rate: f64 = 99.0 / 200.0;
        let left = m.raw(&Design::new(vec!["x".into()], vec![vec![-5.0]]).unwrap())[0];
        let expected = (rate / (1.0 - rate)).ln() - 1.0 / (1.0 - rate);
        assert!((left - expected).abs() < 1e-12, "{left} vs {expected}");
    }

    #[test]
    fn recovers_a_known_signal_out_of_sample() {
        let (d, y, _) = step_data(20_000, 1);
        let m = Gbm::fit(&d, &y, &GbmParams { trees: 100, ..GbmParams::default() }).unwrap();
        let (test, ty, truth) = step_data(20_000, 2);
        let auc = roc_auc(&m.predict(&test), &ty);
        let ceiling = roc_auc(&truth, &ty);
        assert!(auc > ceiling - 0.01, "auc {auc} ceiling {ceiling}");
        // the noise feature earns little of the gain
        let imp = m.importance();
        assert_eq!(imp[0].0, "x0");
        assert!(imp.iter().find(|(n, _)| n == "x2").unwrap().1 < 0.05, "{imp:?}");
        // calibrated on its own: mean prediction near the observed rate
        let mean_p = m.predict(&test).iter().sum::<f64>() / 20_000.0;
        let rate = ty.iter().sum::<f64>() / 20_000.0;
        assert!((mean_p - rate).abs() < 0.01, "{mean_p} vs {rate}");
    }

    #[test]
    fn attributions_sum_to_the_log_odds() {
        let (d, y, _) = step_data(3_000, 3);
        let m = Gbm::fit(&d, &y, &GbmParams { trees: 20, ..GbmParams::default() }).unwrap();
        let raw = m.raw(&d);
        let bias = m.base + m.trees.iter().map(|t| t.node_value(0)).sum::<f64>();
        for (r, terms) in m.contributions(&d).iter().enumerate() {
            assert!((bias + terms.iter().sum::<f64>() - raw[r]).abs() < 1e-9);
        }
        // x0 > 0.5 raises churn: rows there name x0 first
        let reasons = m.reasons(&d, 1);
        let high = (0..d.rows).filter(|&r| d.columns[0][r] > 0.6).collect::<Vec<_>>();
        let named = high.iter().filter(|&&r| reasons[r].first().is_some_and(|n| n == "x0")).count();
        assert!(named as f64 > 0.9 * high.len() as f64, "{named} of {}", high.len());
        // scoring in one walk per tree gives the same bits and the same reasons
        let (p, top) = m.predict_with_reasons(&d, 3);
        assert_eq!(p, m.predict(&d));
        let names: Vec<Vec<String>> =
            top.iter().map(|t| t.iter().map(|&j| m.feature_name(j).to_string()).collect()).collect();
        assert_eq!(names, m.reasons(&d, 3));
        assert!(names.iter().any(|r| r.len() > 1), "some rows have several reasons");
    }

    /// The log-odds and attribution terms of row r, walked one node at a time over the
    /// trees as grown.
    fn walked(m: &Gbm, d: &Design, r: usize) -> (f64, Vec<f64>) {
        let mut terms = vec![0.0; d.columns.len()];
        let mut raw = m.base;
        for tree in &m.trees {
            let mut at = 0;
            while let Node::Split { feature, threshold, missing_left, left, right, .. } = tree.nodes[at] {
                let v = d.columns[feature][r];
                let next = if v.is_nan() {
                    if missing_left { left } else { right }
                } else if v <= threshold {
                    left
                } else {
                    right
                };
                terms[feature] += tree.node_value(next) - tree.node_value(at);
                at = next;
            }
            raw += tree.node_value(at);
        }
        (raw, terms)
    }

    #[test]
    fn rows_scored_side_by_side_get_the_bits_of_one_row_walked_alone() {
        // 1_003 rows: the last block of rows is not full; x1 has missing values.
        let (d, y, _) = step_data(1_003, 6);
        let m = Gbm::fit(&d, &y, &GbmParams { trees: 40, leaves: 7, ..GbmParams::default() }).unwrap();
        let raw = m.raw(&d);
        let terms = m.contributions(&d);
        let (p, _) = m.predict_with_reasons(&d, 2);
        for r in 0..d.rows {
            let (want, want_terms) = walked(&m, &d, r);
            assert_eq!(raw[r].to_bits(), want.to_bits(), "row {r}");
            assert_eq!(p[r].to_bits(), sigmoid(want).to_bits(), "row {r}");
            assert!(terms[r].iter().zip(&want_terms).all(|(a, b)| a.to_bits() == b.to_bits()), "row {r}");
        }
    }

    #[test]
    fn trees_of_one_leaf_are_walked_as_the_others() {
        // A split's leaf children are folded into it when scoring; a tree that is one
        // leaf (nothing to split) has no split to fold into, first, between and last.
        let (d, y, _) = step_data(203, 8);
        let mut m = Gbm::fit(&d, &y, &GbmParams { trees: 5, leaves: 4, ..GbmParams::default() }).unwrap();
        let leaf = |value| Tree { nodes: vec![Node::Leaf { value }] };
        m.trees.insert(0, leaf(0.25));
        m.trees.insert(3, leaf(-0.125));
        m.trees.push(leaf(0.0625));
        let raw = m.raw(&d);
        let terms = m.contributions(&d);
        for r in 0..d.rows {
            let (want, want_terms) = walked(&m, &d, r);
            assert_eq!(raw[r].to_bits(), want.to_bits(), "row {r}");
            assert!(terms[r].iter().zip(&want_terms).all(|(a, b)| a.to_bits() == b.to_bits()), "row {r}");
        }
    }

    #[test]
    fn a_partition_keeps_each_side_in_its_order() {
        // Rows 1 and 2 of four go left. Rows of a width moved as one array, and of one
        // moved chunk by chunk; the targets move with their rows.
        for width in [2, 9] {
            let before: Vec<[u8; ROW_CHUNK]> = (0..4 * width).map(|i| [i as u8; ROW_CHUNK]).collect();
            let goes_left = |row: &[u8]| [1, 2].contains(&(usize::from(row[0]) / width));
            let mut items = vec![[0; ROW_CHUNK]; before.len()];
            let mut targets = [0; 4];
            let left = move_rows((&mut items, &mut targets), (&before, &[10, 11, 12, 13]), width, goes_left, 2);
            assert_eq!(left, 2, "width {width}");
            let rows: Vec<Vec<u8>> = items.chunks(width).map(|row| row.iter().map(|c| c[0]).collect()).collect();
            let want: Vec<Vec<u8>> =
                [1, 2, 0, 3].iter().map(|r| (r * width..(r + 1) * width).map(|i| i as u8).collect()).collect();
            assert_eq!(rows, want, "width {width}");
            assert_eq!(targets, [11, 12, 10, 13], "width {width}");
        }
    }

    #[test]
    fn a_split_leaves_the_rows_of_both_copies_by_leaf() {
        // Six rows of two features; bins 1..=6 in feature 0, the row number in
        // feature 1. Split copy 0's rows 1..5 by feature 0 <= 3 into copy 1, then rows
        // 1..3 of copy 1 back into copy 0 by feature 0 <= 2.
        let d = Design {
            names: vec!["a".into(), "b".into()],
            rows: 6,
            columns: vec![vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]],
        };
        let x = Picked::all(&d, None);
        let bins = Bins::fit(x, 255);
        let mut rows = LeafOrdered::new(&bins, x, &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 0.0);
        let row_of = |rows: &LeafOrdered, c: usize, i: usize| rows.rows(c, i..i + 1)[1] - 1;
        let by_value = |at: u8| move |bins: &[u8]| bins[0] % 2 == at;
        let mid = rows.partition(0, (1, 5), 2, by_value(0));
        assert_eq!(mid, 3);
        assert_eq!((1..5).map(|i| row_of(&rows, 1, i)).collect::<Vec<_>>(), [1, 3, 2, 4]);
        assert_eq!((1..5).map(|i| rows.targets[1][i].y).collect::<Vec<_>>(), [1.0, 1.0, 0.0, 0.0]);
        let mid = rows.partition(1, (1, 3), 0, by_value(1));
        assert_eq!(mid, 1, "no row of 1..3 has an odd bin");
        rows.bring_back(3..5);
        assert_eq!((0..6).map(|i| row_of(&rows, 0, i)).collect::<Vec<_>>(), [0, 1, 3, 2, 4, 5]);
    }

    #[test]
    fn the_same_rows_give_the_same_model_on_any_thread_count() {
        let (d, y, _) = step_data(5_000, 4);
        let p = GbmParams { trees: 30, ..GbmParams::default() };
        let a = Gbm::fit(&d, &y, &p).unwrap().raw(&d);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = one.install(|| Gbm::fit(&d, &y, &p).unwrap().raw(&d));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn a_fit_on_some_rows_is_the_fit_on_their_copy() {
        let (d, y, _) = step_data(3_000, 8);
        let rows: Vec<usize> = (0..d.rows).filter(|i| i % 5 != 4 && i % 7 != 0).collect();
        let ys: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
        let p = GbmParams { trees: 25, ..GbmParams::default() };
        let copied = Gbm::fit(&d.take(&rows), &ys, &p).unwrap().raw(&d);
        let picked = Gbm::fit_rows(&d, &rows, &ys, &p).unwrap().raw(&d);
        assert!(copied.iter().zip(&picked).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(Gbm::fit_rows(&d, &[0, d.rows], &[0.0, 1.0], &p).is_err());
    }

    #[test]
    fn bad_settings_are_refused() {
        let (d, y, _) = step_data(100, 5);
        assert!(Gbm::fit(&d, &y, &GbmParams { bins: 300, ..GbmParams::default() }).is_err());
        assert!(Gbm::fit(&d, &y, &GbmParams { learning_rate: 0.0, ..GbmParams::default() }).is_err());
    }
}
