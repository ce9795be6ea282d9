//! The retained-message tree: one value per topic name, found by topic filter without scanning
//! every retained topic.
//!
//! A subscription asks the reverse question of publishing: which stored topics does this filter
//! match? The tree follows the filter: a literal level goes to one child, `+` to every child, `#`
//! takes the whole subtree below (and the node itself). A lookup touches the matching subtrees
//! and the path to them, nothing else. The same arena layout as the subscription index keeps it
//! compact: nodes in a vector, edges in one map keyed by (parent, interned level), each node with
//! the list of its children for the wildcard steps. Nodes left without value or children are
//! freed at once.

use hashbrown::HashMap;

use crate::intern::{LevelId, Levels, NO_LEVEL, edge_key};
use crate::{TopicFilter, TopicName};

type NodeId = u32;

const ROOT: NodeId = 0;
const NONE: NodeId = u32::MAX;

#[derive(Debug)]
struct Node<V> {
    parent: NodeId,
    level: LevelId,
    /// Where this node is in its parent's `children` (kept up to date on removal, so that
    /// removing a child of a node with a million children is not a scan).
    index_in_parent: u32,
    children: Vec<NodeId>,
    value: Option<(TopicName, V)>,
}

impl<V> Node<V> {
    fn new(parent: NodeId, level: LevelId, index_in_parent: u32) -> Self {
        Self {
            parent,
            level,
            index_in_parent,
            children: Vec::new(),
            value: None,
        }
    }
}

/// Values (retained messages) stored by topic name and looked up by topic filter.
#[derive(Debug)]
pub struct RetainedTree<V> {
    nodes: Vec<Node<V>>,
    free: Vec<NodeId>,
    levels: Levels,
    edges: HashMap<(NodeId, LevelId), NodeId>,
    len: usize,
}

impl<V> Default for RetainedTree<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> RetainedTree<V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            nodes: vec![Node::new(NONE, NO_LEVEL, 0)],
            free: Vec::new(),
            levels: Levels::default(),
            edges: HashMap::new(),
            len: 0,
        }
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` under `topic`, replacing (and returning) what was there. The tree keeps
    /// `topic` as given; pass [`TopicName::copied`] to avoid keeping a received packet alive.
    pub fn insert(&mut self, topic: TopicName, value: V) -> Option<V> {
        // The empty name only stands for a topic alias; it is never stored.
        if topic.is_empty() {
            return None;
        }
        let mut node = ROOT;
        for level in topic.levels() {
            node = match self.child(node, level) {
                Some(child) => child,
                None => self.add_child(node, level),
            };
        }
        let slot = &mut self.nodes.get_mut(node as usize)?.value;
        let old = slot.replace((topic, value)).map(|(_, v)| v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value stored under `topic`.
    pub fn get(&self, topic: &TopicName) -> Option<&V> {
        let node = self.find(topic)?;
        self.nodes
            .get(node as usize)?
            .value
            .as_ref()
            .map(|(_, v)| v)
    }

    /// Removes and returns the value stored under `topic`.
    pub fn remove(&mut self, topic: &TopicName) -> Option<V> {
        let node = self.find(topic)?;
        let (_, value) = self.nodes.get_mut(node as usize)?.value.take()?;
        self.len -= 1;
        self.prune(node);
        Some(value)
    }

    /// Calls `visit` with every stored topic and value that `filter` matches (ignoring any
    /// `$share/` prefix: the filter proper is used), visiting only the matching subtrees.
    /// Wildcard-first filters skip topics starting with `$` [MQTT-4.7.2-1].
    pub fn for_each_match(&self, filter: &TopicFilter, mut visit: impl FnMut(&TopicName, &V)) {
        let levels: Vec<&str> = filter.levels().collect();
        let mut stack: Vec<(NodeId, usize)> = vec![(ROOT, 0)];
        while let Some((id, depth)) = stack.pop() {
            let Some(node) = self.nodes.get(id as usize) else {
                continue;
            };
            match levels.get(depth).copied() {
                None => {
                    if let Some((topic, value)) = &node.value {
                        visit(topic, value);
                    }
                }
                Some("#") => self.visit_subtree(id, depth == 0, &mut visit),
                Some("+") => {
                    for &child in &node.children {
                        if !(depth == 0 && self.is_dollar(child)) {
                            stack.push((child, depth + 1));
                        }
                    }
                }
                Some(level) => {
                    if let Some(child) = self.child(id, level) {
                        stack.push((child, depth + 1));
                    }
                }
            }
        }
    }

    /// Removes every value for which `keep` returns false (expired messages, say).
    pub fn retain(&mut self, mut keep: impl FnMut(&TopicName, &mut V) -> bool) {
        let mut emptied = Vec::new();
        for (id, node) in self.nodes.iter_mut().enumerate() {
            if let Some((topic, value)) = &mut node.value
                && !keep(topic, value)
            {
                node.value = None;
                emptied.push(u32::try_from(id).unwrap_or(NONE));
            }
        }
        self.len -= emptied.len();
        for id in emptied {
            self.prune(id);
        }
    }

    /// Visits the values of `id` and everything below it; at the root, topics starting with `$`
    /// are skipped.
    fn visit_subtree(&self, id: NodeId, root: bool, visit: &mut impl FnMut(&TopicName, &V)) {
        let mut stack = vec![id];
        while let Some(id) = stack.pop() {
            let Some(node) = self.nodes.get(id as usize) else {
                continue;
            };
            if let Some((topic, value)) = &node.value {
                visit(topic, value);
            }
            for &child in &node.children {
                if !(root && id == ROOT && self.is_dollar(child)) {
                    stack.push(child);
                }
            }
        }
    }

    fn is_dollar(&self, id: NodeId) -> bool {
        self.nodes
            .get(id as usize)
            .is_some_and(|n| self.levels.text(n.level).starts_with('$'))
    }

    fn child(&self, node: NodeId, level: &str) -> Option<NodeId> {
        let level = self.levels.find(level)?;
        self.edges.get(&edge_key(node, level)).copied()
    }

    fn find(&self, topic: &TopicName) -> Option<NodeId> {
        topic
            .levels()
            .try_fold(ROOT, |node, level| self.child(node, level))
    }

    fn add_child(&mut self, parent: NodeId, level: &str) -> NodeId {
        let level = self.levels.acquire(level);
        let index = self
            .nodes
            .get(parent as usize)
            .map_or(0, |p| u32::try_from(p.children.len()).unwrap_or(u32::MAX));
        let node = Node::new(parent, level, index);
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.nodes.get_mut(id as usize) {
                    *slot = node;
                }
                id
            }
            None => {
                self.nodes.push(node);
                u32::try_from(self.nodes.len() - 1).unwrap_or(NONE)
            }
        };
        self.edges.insert(edge_key(parent, level), id);
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.children.push(id);
        }
        id
    }

    /// Frees `id` and its ancestors while they hold neither a value nor children. A node
    /// already freed (by the pruning of a descendant) is left alone: `parent == NONE` marks it.
    fn prune(&mut self, mut id: NodeId) {
        while id != ROOT {
            let Some(node) = self.nodes.get_mut(id as usize) else {
                return;
            };
            if node.parent == NONE || node.value.is_some() || !node.children.is_empty() {
                return;
            }
            let (parent, level, index) = (node.parent, node.level, node.index_in_parent);
            node.children = Vec::new();
            node.parent = NONE;
            self.free.push(id);
            self.edges.remove(&edge_key(parent, level));
            self.levels.release(level);
            let moved = self.nodes.get_mut(parent as usize).and_then(|p| {
                let index = index as usize;
                if index < p.children.len() {
                    p.children.swap_remove(index);
                }
                p.children.get(index).copied()
            });
            if let Some(moved) = moved.and_then(|m| self.nodes.get_mut(m as usize)) {
                moved.index_in_parent = index;
            }
            id = parent;
        }
    }
}
