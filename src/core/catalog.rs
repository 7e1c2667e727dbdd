//! The authoritative in-memory catalog: every collection, client and access profile by id, with
//! the indexes the admin API needs (collection by path, profiles by client).
//!
//! Changes arrive as a [`ChangeSet`] of row puts and deletes — from the admin API of this node or
//! from the store's change log — and [`Catalog::apply`] returns each row's before and after
//! images ([`Applied`]), so the registry recompiles only what changed
//! ([`crate::core::registry::Snapshot::apply`]) and a change the store refused can be undone
//! ([`Catalog::undo`]). Rows are kept in id order, which is the order of the admin API's pages.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::core::model::{Client, Collection, Profile, State};

/// Most items one page of a list call holds (`?limit=` is capped here).
pub const MAX_PAGE_LIMIT: usize = 1000;
/// Items per page when `?limit=` is not given.
pub const DEFAULT_PAGE_LIMIT: usize = 100;

/// The three kinds of stored rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A collection with its endpoints.
    Collection,
    /// A client.
    Client,
    /// An access profile.
    Profile,
}

impl Kind {
    /// The kind's name as the store's change log and tables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Collection => "collection",
            Kind::Client => "client",
            Kind::Profile => "profile",
        }
    }

    /// The kind named `text` by [`Kind::as_str`].
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "collection" => Some(Kind::Collection),
            "client" => Some(Kind::Client),
            "profile" => Some(Kind::Profile),
            _ => None,
        }
    }
}

/// One stored object.
// Rows travel in short lists of changes; boxing the profile would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A collection with its endpoints.
    Collection(Collection),
    /// A client.
    Client(Client),
    /// An access profile.
    Profile(Profile),
}

impl Row {
    /// The row's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Row::Collection(_) => Kind::Collection,
            Row::Client(_) => Kind::Client,
            Row::Profile(_) => Kind::Profile,
        }
    }

    /// The row's id.
    pub fn id(&self) -> &str {
        match self {
            Row::Collection(c) => &c.id,
            Row::Client(c) => &c.id,
            Row::Profile(p) => &p.id,
        }
    }
}

/// One row written or removed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp {
    /// Insert or replace the row with this id.
    Put(Row),
    /// Remove the row of this kind and id (a no-op if there is none).
    Delete(Kind, String),
}

impl RowOp {
    /// The kind and id of the row this op touches.
    pub fn key(&self) -> (Kind, &str) {
        match self {
            RowOp::Put(row) => (row.kind(), row.id()),
            RowOp::Delete(kind, id) => (*kind, id),
        }
    }
}

/// The rows one change writes, in order; committed to the store as one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeSet {
    /// The puts and deletes, applied in this order.
    pub ops: Vec<RowOp>,
}

impl ChangeSet {
    /// Adds a put of `row`.
    pub fn put(&mut self, row: Row) {
        self.ops.push(RowOp::Put(row));
    }

    /// Adds a delete of the row `kind`/`id`.
    pub fn delete(&mut self, kind: Kind, id: &str) {
        self.ops.push(RowOp::Delete(kind, id.to_owned()));
    }

    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Puts of every object of `state`: collections, then clients, then profiles.
    pub fn from_state(state: &State) -> ChangeSet {
        let mut change = ChangeSet::default();
        change.ops.extend(
            (state.collections.iter().cloned().map(Row::Collection))
                .chain(state.clients.iter().cloned().map(Row::Client))
                .chain(state.profiles.iter().cloned().map(Row::Profile))
                .map(RowOp::Put),
        );
        change
    }
}

/// What one op did: the row before and after (`None` where it did not exist).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The row's kind.
    pub kind: Kind,
    /// The row's id.
    pub id: String,
    /// The row as it was.
    pub before: Option<Row>,
    /// The row as it is now.
    pub after: Option<Row>,
}

/// Every stored object, by id, with the indexes the admin API reads.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The store revision these rows reflect.
    pub revision: u64,
    /// Collections by id.
    collections: BTreeMap<String, Collection>,
    /// Clients by id.
    clients: BTreeMap<String, Client>,
    /// Profiles by id.
    profiles: BTreeMap<String, Profile>,
    /// Collection id by collection path.
    by_path: HashMap<String, String>,
    /// Profile ids by client id.
    by_client: HashMap<String, BTreeSet<String>>,
}

impl Catalog {
    /// A catalog holding every object of `state` (not validated: see `Snapshot::build`).
    pub fn from_state(state: &State) -> Catalog {
        let mut catalog = Catalog {
            revision: state.revision,
            ..Catalog::default()
        };
        catalog.apply(ChangeSet::from_state(state));
        catalog
    }

    /// Every object as one state document, in id order.
    pub fn to_state(&self) -> State {
        State {
            format: State::FORMAT,
            revision: self.revision,
            collections: self.collections.values().cloned().collect(),
            clients: self.clients.values().cloned().collect(),
            profiles: self.profiles.values().cloned().collect(),
        }
    }

    /// The collection with this id.
    pub fn collection(&self, id: &str) -> Option<&Collection> {
        self.collections.get(id)
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    /// The profile with this id.
    pub fn profile(&self, id: &str) -> Option<&Profile> {
        self.profiles.get(id)
    }

    /// The collection whose path is `path`.
    pub fn collection_by_path(&self, path: &str) -> Option<&Collection> {
        self.by_path
            .get(path)
            .and_then(|id| self.collections.get(id))
    }

    /// The profiles of client `client_id`, in id order.
    pub fn profiles_of_client<'a>(&'a self, client_id: &str) -> impl Iterator<Item = &'a Profile> {
        self.by_client
            .get(client_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.profiles.get(id))
    }

    /// Every profile, in id order.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.values()
    }

    /// Every collection, in id order.
    pub fn collections(&self) -> impl Iterator<Item = &Collection> {
        self.collections.values()
    }

    /// Every client, in id order.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    /// How many collections, clients and profiles there are.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.collections.len(),
            self.clients.len(),
            self.profiles.len(),
        )
    }

    /// Whether the catalog holds no object at all.
    pub fn is_empty(&self) -> bool {
        self.counts() == (0, 0, 0)
    }

    /// One page of collections after id `after` (exclusive): at most `limit` items, and the id to
    /// pass as `after` for the next page (`None` on the last page).
    pub fn collections_page(&self, after: Option<&str>, limit: usize) -> Page<'_, Collection> {
        page(&self.collections, after, limit)
    }

    /// One page of clients; see [`Catalog::collections_page`].
    pub fn clients_page(&self, after: Option<&str>, limit: usize) -> Page<'_, Client> {
        page(&self.clients, after, limit)
    }

    /// One page of profiles, of one client when `client_id` is given; see
    /// [`Catalog::collections_page`].
    pub fn profiles_page(
        &self,
        client_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Page<'_, Profile> {
        match client_id {
            None => page(&self.profiles, after, limit),
            Some(client_id) => {
                let ids = self.by_client.get(client_id);
                let rows = ids
                    .into_iter()
                    .flat_map(|ids| ids.range::<str, _>((start_bound(after), Bound::Unbounded)))
                    .filter_map(|id| self.profiles.get_key_value(id));
                page_of(rows, limit)
            }
        }
    }

    /// The rows that turn this catalog into `state`: puts of new and changed objects, deletes of
    /// objects `state` lacks. Unchanged objects are left out, so applying it recompiles nothing
    /// that did not change.
    pub fn difference(&self, state: &State) -> ChangeSet {
        let mut change = ChangeSet::default();
        for c in &state.collections {
            if self.collections.get(&c.id) != Some(c) {
                change.put(Row::Collection(c.clone()));
            }
        }
        for c in &state.clients {
            if self.clients.get(&c.id) != Some(c) {
                change.put(Row::Client(c.clone()));
            }
        }
        for p in &state.profiles {
            if self.profiles.get(&p.id) != Some(p) {
                change.put(Row::Profile(p.clone()));
            }
        }
        let keep = |ids: Vec<&String>| -> std::collections::HashSet<String> {
            ids.into_iter().cloned().collect()
        };
        let profiles = keep(state.profiles.iter().map(|p| &p.id).collect());
        for id in self.profiles.keys().filter(|id| !profiles.contains(*id)) {
            change.delete(Kind::Profile, id);
        }
        let clients = keep(state.clients.iter().map(|c| &c.id).collect());
        for id in self.clients.keys().filter(|id| !clients.contains(*id)) {
            change.delete(Kind::Client, id);
        }
        let collections = keep(state.collections.iter().map(|c| &c.id).collect());
        for id in self
            .collections
            .keys()
            .filter(|id| !collections.contains(*id))
        {
            change.delete(Kind::Collection, id);
        }
        change
    }

    /// Applies `change` in order and returns what each op did.
    pub fn apply(&mut self, change: ChangeSet) -> Vec<Applied> {
        change.ops.into_iter().map(|op| self.apply_op(op)).collect()
    }

    /// Reverts `applied` (as returned by [`Catalog::apply`]): restores every before image, in
    /// reverse order.
    pub fn undo(&mut self, applied: Vec<Applied>) {
        for a in applied.into_iter().rev() {
            let op = match a.before {
                Some(row) => RowOp::Put(row),
                None => RowOp::Delete(a.kind, a.id),
            };
            self.apply_op(op);
        }
    }

    fn apply_op(&mut self, op: RowOp) -> Applied {
        let (kind, id) = {
            let (kind, id) = op.key();
            (kind, id.to_owned())
        };
        let before = self.remove(kind, &id);
        let after = match op {
            RowOp::Put(row) => {
                self.insert(row.clone());
                Some(row)
            }
            RowOp::Delete(..) => None,
        };
        Applied {
            kind,
            id,
            before,
            after,
        }
    }

    fn remove(&mut self, kind: Kind, id: &str) -> Option<Row> {
        match kind {
            Kind::Collection => {
                let old = self.collections.remove(id)?;
                if self.by_path.get(&old.path).is_some_and(|i| i == id) {
                    self.by_path.remove(&old.path);
                }
                Some(Row::Collection(old))
            }
            Kind::Client => self.clients.remove(id).map(Row::Client),
            Kind::Profile => {
                let old = self.profiles.remove(id)?;
                if let Some(set) = self.by_client.get_mut(&old.client_id) {
                    set.remove(id);
                    if set.is_empty() {
                        self.by_client.remove(&old.client_id);
                    }
                }
                Some(Row::Profile(old))
            }
        }
    }

    fn insert(&mut self, row: Row) {
        match row {
            Row::Collection(c) => {
                self.by_path.insert(c.path.clone(), c.id.clone());
                self.collections.insert(c.id.clone(), c);
            }
            Row::Client(c) => {
                self.clients.insert(c.id.clone(), c);
            }
            Row::Profile(p) => {
                self.by_client
                    .entry(p.client_id.clone())
                    .or_default()
                    .insert(p.id.clone());
                self.profiles.insert(p.id.clone(), p);
            }
        }
    }
}

/// One page of a list: the items and the cursor of the next page.
pub struct Page<'a, T> {
    /// The items, in id order.
    pub items: Vec<&'a T>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

fn start_bound(after: Option<&str>) -> Bound<&str> {
    match after {
        Some(after) => Bound::Excluded(after),
        None => Bound::Unbounded,
    }
}

fn page<'a, T>(map: &'a BTreeMap<String, T>, after: Option<&str>, limit: usize) -> Page<'a, T> {
    let rows = map.range::<str, _>((start_bound(after), Bound::Unbounded));
    page_of(rows, limit)
}

fn page_of<'a, T: 'a>(
    rows: impl Iterator<Item = (&'a String, &'a T)>,
    limit: usize,
) -> Page<'a, T> {
    let limit = limit.clamp(1, MAX_PAGE_LIMIT);
    let mut found: Vec<(&'a String, &'a T)> = rows.take(limit + 1).collect();
    // One item beyond the page says there is a next page; it starts after the page's last id.
    let next = if found.len() > limit {
        found.truncate(limit);
        found.last().map(|(id, _)| (*id).clone())
    } else {
        None
    };
    let items = found.into_iter().map(|(_, item)| item).collect();
    Page { items, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::Client;

    fn client(id: &str) -> Row {
        Row::Client(Client {
            id: id.to_owned(),
            name: format!("client {id}"),
            portal_key: "k".repeat(64),
            active: true,
        })
    }

    #[test]
    fn pages_follow_id_order_and_end_with_no_next() {
        let mut catalog = Catalog::default();
        let mut change = ChangeSet::default();
        for id in ["c", "a", "e", "b", "d"] {
            change.put(client(id));
        }
        catalog.apply(change);
        let first = catalog.clients_page(None, 2);
        let ids: Vec<&str> = first.items.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(first.next.as_deref(), Some("b"));
        let second = catalog.clients_page(first.next.as_deref(), 2);
        assert_eq!(second.items.len(), 2);
        assert_eq!(second.next.as_deref(), Some("d"));
        let last = catalog.clients_page(second.next.as_deref(), 2);
        assert_eq!(last.items.len(), 1);
        assert_eq!(last.next, None);
        assert_eq!(catalog.clients_page(None, 5).next, None);
        assert_eq!(catalog.clients_page(Some("zzz"), 5).items.len(), 0);
    }

    #[test]
    fn the_difference_to_a_state_holds_only_what_changed() {
        let mut catalog = Catalog::default();
        let mut change = ChangeSet::default();
        for id in ["a", "b", "c"] {
            change.put(client(id));
        }
        catalog.apply(change);
        let mut target = catalog.to_state();
        target.clients.retain(|c| c.id != "b");
        target.clients[0].name = "renamed".into();
        target.revision = 9;
        let diff = catalog.difference(&target);
        assert_eq!(diff.ops.len(), 2, "{diff:?}");
        catalog.apply(diff);
        catalog.revision = 9;
        assert_eq!(catalog.to_state(), target);
        assert!(catalog.difference(&target).is_empty());
    }

    #[test]
    fn undo_restores_every_before_image() {
        let mut catalog = Catalog::default();
        let mut change = ChangeSet::default();
        change.put(client("a"));
        catalog.apply(change);
        let before = catalog.to_state();
        let mut change = ChangeSet::default();
        change.delete(Kind::Client, "a");
        change.put(client("b"));
        let applied = catalog.apply(change);
        assert!(catalog.client("a").is_none());
        catalog.undo(applied);
        assert_eq!(catalog.to_state(), before);
    }
}
