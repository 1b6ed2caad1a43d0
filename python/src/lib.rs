//! `cohort._cohort`: the native half of the `cohort` Python package, a thin layer over
//! [`cohort_snapshot::Snapshot`] (no DataFusion).
//!
//! numpy and pyarrow are never linked: arrays come in and go out as plain `bytes` and
//! `bytearray`, and `cohort/_interop.py` turns them into (or out of) numpy and pyarrow
//! arrays. The GIL is released while a snapshot is opened and while batches are answered.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use cohort_snapshot::Error;

/// The runtime that drives the reader's async open (object-store requests), made on first
/// use and shared by every open.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("cohort-io")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the I/O runtime: {e}")))
}

/// A helper of `cohort/_interop.py` or an exception class of `cohort/_errors.py`, imported
/// once.
macro_rules! python_attr {
    ($py:expr, $module:literal, $name:literal) => {{
        static CELL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        CELL.get_or_try_init($py, || -> PyResult<Py<PyAny>> {
            Ok($py.import($module)?.getattr($name)?.unbind())
        })
        .map(|attr| attr.bind($py))
    }};
}

/// The Python exception for a reader error: the Rust message, as a subclass of
/// `cohort.SnapshotError` (see `cohort/_errors.py`).
fn to_py_err(error: Error) -> PyErr {
    Python::attach(|py| {
        let class = match &error {
            Error::UnknownGroup { .. } => python_attr!(py, "cohort._errors", "UnknownGroup"),
            Error::NothingPublished { .. } | Error::NoSuchRun { .. } => {
                python_attr!(py, "cohort._errors", "NothingPublished")
            }
            Error::Invalid { .. } => python_attr!(py, "cohort._errors", "InvalidSnapshot"),
            Error::InvalidUrl { .. } => python_attr!(py, "cohort._errors", "InvalidUrl"),
            Error::Io { .. } | Error::Storage { .. } => {
                python_attr!(py, "cohort._errors", "StorageError")
            }
            _ => python_attr!(py, "cohort._errors", "SnapshotError"),
        };
        let class = match class {
            Ok(class) => class,
            Err(import_failed) => return import_failed,
        };
        let made = class.call1((error.to_string(),)).and_then(|exception| {
            if let Error::UnknownGroup { group, run_id } = &error {
                exception.setattr("group", group)?;
                exception.setattr("run_id", run_id)?;
            }
            Ok(PyErr::from_value(exception))
        });
        made.unwrap_or_else(|e| e)
    })
}

/// Runs `f` with the GIL released and turns its error into a Python exception.
fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> cohort_snapshot::Result<T> + Send,
) -> PyResult<T> {
    py.detach(f).map_err(to_py_err)
}

/// A customer id read from Python: a `str` as it is, an `int` (or anything with
/// `__index__`, such as a numpy integer) to be spelt in canonical decimal.
enum IdValue<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    UInt(u64),
}

fn id_value<'a>(id: &'a Bound<'_, PyAny>) -> PyResult<IdValue<'a>> {
    if let Ok(s) = id.cast::<PyString>() {
        return Ok(IdValue::Text(s.to_cow()?));
    }
    if id.is_instance_of::<PyBool>() || id.is_instance_of::<PyFloat>() {
        return Err(type_error(id));
    }
    if let Ok(n) = id.extract::<i64>() {
        return Ok(IdValue::Int(n));
    }
    if let Ok(n) = id.extract::<u64>() {
        return Ok(IdValue::UInt(n));
    }
    if id.is_instance_of::<PyInt>() {
        // Beyond 64 bits: no customer has it, but its spelling is still canonical.
        return Ok(IdValue::Text(Cow::Owned(id.str()?.to_cow()?.into_owned())));
    }
    Err(type_error(id))
}

/// A customer id as text.
fn id_text<'a>(id: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    Ok(match id_value(id)? {
        IdValue::Text(text) => text,
        IdValue::Int(n) => Cow::Owned(n.to_string()),
        IdValue::UInt(n) => Cow::Owned(n.to_string()),
    })
}

fn type_error(id: &Bound<'_, PyAny>) -> PyErr {
    let type_name = id
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    PyTypeError::new_err(format!("a customer id is an int or a str, not {type_name}"))
}

fn group_text<'a>(group: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    group
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("a group id is a str"))?
        .to_cow()
}

/// Many ids (or group ids) as one text buffer and the end of each in it.
#[derive(Default)]
struct Texts {
    text: String,
    ends: Vec<usize>,
}

impl Texts {
    fn with_capacity(n: usize) -> Texts {
        Texts {
            text: String::with_capacity(n * 8),
            ends: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    fn push_display(&mut self, id: impl std::fmt::Display) {
        use std::fmt::Write;
        write!(self.text, "{id}").expect("writing to a String");
        self.ends.push(self.text.len());
    }

    fn push_id(&mut self, id: &Bound<'_, PyAny>) -> PyResult<()> {
        match id_value(id)? {
            IdValue::Text(text) => self.push(&text),
            IdValue::Int(n) => self.push_display(n),
            IdValue::UInt(n) => self.push_display(n),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.text[start..end])
    }
}

/// A batch as `cohort._interop.batch_payload` hands it over: Python objects (read with the
/// GIL), or buffers that are read without it.
enum Batch<'py> {
    /// A list or tuple.
    Objects(Bound<'py, PyAny>),
    Native(Native),
}

/// Buffers of a numpy or pyarrow array.
enum Native {
    /// Native-endian 64-bit integers.
    Int64(Vec<u8>),
    /// Native-endian unsigned 64-bit integers.
    UInt64(Vec<u8>),
    /// UTF-8 text and native-endian int64 offsets (n + 1 of them) into it (pyarrow).
    Utf8 { offsets: Vec<u8>, data: Vec<u8> },
    /// numpy `str` arrays: `width` UCS-4 code points per item, padded with NULs.
    Ucs4 { data: Vec<u8>, width: usize },
}

impl<'py> Batch<'py> {
    fn from_python(batch: &Bound<'py, PyAny>) -> PyResult<Batch<'py>> {
        if batch.is_instance_of::<PyList>() || batch.is_instance_of::<PyTuple>() {
            return Ok(Batch::Objects(batch.clone()));
        }
        let py = batch.py();
        let payload = python_attr!(py, "cohort._interop", "batch_payload")?.call1((batch,))?;
        let (kind, first, second): (String, Bound<'py, PyAny>, Bound<'py, PyAny>) =
            payload.extract()?;
        let bytes = |b: &Bound<'py, PyAny>| -> PyResult<Vec<u8>> {
            Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
        };
        Ok(Batch::Native(match kind.as_str() {
            "objects" => return Ok(Batch::Objects(first)),
            "int64" => Native::Int64(bytes(&first)?),
            "uint64" => Native::UInt64(bytes(&first)?),
            "utf8" => Native::Utf8 {
                offsets: bytes(&first)?,
                data: bytes(&second)?,
            },
            "ucs4" => Native::Ucs4 {
                data: bytes(&first)?,
                width: second.extract()?,
            },
            other => {
                return Err(PyRuntimeError::new_err(format!(
                    "cohort._interop gave an unknown batch kind '{other}'"
                )))
            }
        }))
    }
}

impl Native {
    /// The items as text (no Python object is touched: run without the GIL).
    fn into_texts(self) -> Result<Texts, String> {
        let eight = |c: &[u8]| <[u8; 8]>::try_from(c).expect("8 bytes");
        Ok(match self {
            Native::Int64(bytes) => {
                let mut texts = Texts::with_capacity(bytes.len() / 8);
                for chunk in bytes.chunks_exact(8) {
                    texts.push_display(i64::from_ne_bytes(eight(chunk)));
                }
                texts
            }
            Native::UInt64(bytes) => {
                let mut texts = Texts::with_capacity(bytes.len() / 8);
                for chunk in bytes.chunks_exact(8) {
                    texts.push_display(u64::from_ne_bytes(eight(chunk)));
                }
                texts
            }
            Native::Utf8 { offsets, data } => {
                let offsets: Vec<usize> = offsets
                    .chunks_exact(8)
                    .map(|c| i64::from_ne_bytes(eight(c)) as usize)
                    .collect();
                let mut texts = Texts::with_capacity(offsets.len().saturating_sub(1));
                for pair in offsets.windows(2) {
                    let item = data
                        .get(pair[0]..pair[1])
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .ok_or("a string array with bad offsets or UTF-8")?;
                    texts.push(item);
                }
                texts
            }
            Native::Ucs4 { data, width } => {
                let item_bytes = width.max(1) * 4;
                let mut texts = Texts::with_capacity(data.len() / item_bytes);
                for item in data.chunks_exact(item_bytes) {
                    let points: Vec<u32> = item
                        .chunks_exact(4)
                        .map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes")))
                        .collect();
                    // numpy pads with NULs (and drops trailing NULs of what was stored).
                    let used = points.iter().rposition(|&p| p != 0).map_or(0, |i| i + 1);
                    for &point in &points[..used] {
                        texts.text.push(
                            char::from_u32(point).ok_or("a str array with a bad code point")?,
                        );
                    }
                    texts.ends.push(texts.text.len());
                }
                texts
            }
        })
    }
}

/// Why a batch was refused: the caller's input, or the reader (an unknown group).
enum BatchError {
    Value(String),
    Snapshot(Error),
}

/// The group of each check.
enum Groups {
    /// One group for every check.
    One(String),
    /// From Python objects: the distinct names, and which one each check names.
    Named {
        names: Vec<String>,
        of_check: Vec<u32>,
    },
    /// From an array.
    Texts(Texts),
}

impl Groups {
    fn from_python(groups: &Bound<'_, PyAny>) -> PyResult<Groups> {
        if let Ok(group) = groups.cast::<PyString>() {
            return Ok(Groups::One(group.to_cow()?.into_owned()));
        }
        match Batch::from_python(groups)? {
            Batch::Objects(objects) => Groups::from_objects(&objects),
            Batch::Native(Native::Int64(_) | Native::UInt64(_)) => {
                Err(PyTypeError::new_err("a group id is a str, not an integer"))
            }
            Batch::Native(native) => Ok(Groups::Texts(
                native.into_texts().map_err(PyValueError::new_err)?,
            )),
        }
    }

    /// Each distinct str object is read once (the container keeps every item alive, so
    /// their addresses identify them meanwhile), each distinct name kept once.
    fn from_objects(objects: &Bound<'_, PyAny>) -> PyResult<Groups> {
        let mut names: Vec<String> = Vec::new();
        let mut by_name: HashMap<String, u32> = HashMap::new();
        let mut by_object: HashMap<usize, u32> = HashMap::new();
        let mut of_check = Vec::with_capacity(objects.len().unwrap_or(0));
        for item in objects.try_iter()? {
            let item = item?;
            let address = item.as_ptr() as usize;
            let i = match by_object.get(&address) {
                Some(&i) => i,
                None => {
                    let name = group_text(&item)?;
                    let i = match by_name.get(name.as_ref()) {
                        Some(&i) => i,
                        None => {
                            let i = names.len() as u32;
                            names.push(name.to_string());
                            by_name.insert(name.into_owned(), i);
                            i
                        }
                    };
                    by_object.insert(address, i);
                    i
                }
            };
            of_check.push(i);
        }
        Ok(Groups::Named { names, of_check })
    }

    /// The number of checks, `None` for one group for all.
    fn len(&self) -> Option<usize> {
        match self {
            Groups::One(_) => None,
            Groups::Named { of_check, .. } => Some(of_check.len()),
            Groups::Texts(texts) => Some(texts.len()),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            Groups::One(group) => Box::new(std::iter::repeat(group.as_str())),
            Groups::Named { names, of_check } => {
                Box::new(of_check.iter().map(|&i| names[i as usize].as_str()))
            }
            Groups::Texts(texts) => Box::new(texts.iter()),
        }
    }
}

/// A published run, loaded and verified: membership lookups by external customer id.
#[pyclass(frozen, module = "cohort", name = "Snapshot")]
struct Snapshot {
    inner: cohort_snapshot::Snapshot,
}

#[pymethods]
impl Snapshot {
    /// Opens the run `LATEST` names under `url` (or the run `run_id`), verifying it.
    #[staticmethod]
    #[pyo3(signature = (url, run_id = None))]
    fn open(py: Python<'_>, url: &Bound<'_, PyAny>, run_id: Option<String>) -> PyResult<Snapshot> {
        let url: String = if let Ok(s) = url.cast::<PyString>() {
            s.to_cow()?.into_owned()
        } else {
            let path: std::path::PathBuf = url
                .extract()
                .map_err(|_| PyTypeError::new_err("url is a str or a path (os.PathLike)"))?;
            path.to_str()
                .ok_or_else(|| PyValueError::new_err("the path is not valid UTF-8"))?
                .to_string()
        };
        let runtime = runtime()?;
        let inner = detached(py, move || {
            runtime.block_on(async {
                match run_id {
                    None => cohort_snapshot::Snapshot::open(&url).await,
                    Some(run_id) => cohort_snapshot::Snapshot::open_run(&url, &run_id).await,
                }
            })
        })?;
        Ok(Snapshot { inner })
    }

    /// The run id.
    #[getter]
    fn run_id(&self) -> &str {
        self.inner.run_id()
    }

    /// The id column's type: "int64", "uint64" or "string".
    #[getter]
    fn id_type(&self) -> &str {
        &self.inner.manifest().id_type
    }

    /// The customer count of the run.
    #[getter]
    fn customers(&self) -> u64 {
        self.inner.manifest().customers
    }

    /// The manifest, as a dict (the parsed `manifest.json`).
    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = serde_json::to_string(self.inner.manifest())
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        py.import("json")?.getattr("loads")?.call1((json,))
    }

    /// The groups, in manifest order: `[{"id": ..., "name": ..., "members": n}]`, as the
    /// service's `GET /v1/groups` lists them.
    fn groups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for g in self.inner.groups() {
            let dict = PyDict::new(py);
            dict.set_item("id", &g.id)?;
            dict.set_item("name", &g.name)?;
            dict.set_item("members", g.members)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// A group's member count.
    fn cardinality(&self, group: &Bound<'_, PyAny>) -> PyResult<u64> {
        let group = group_text(group)?;
        self.inner
            .cardinality(&group)
            .ok_or_else(|| self.unknown_group(&group))
    }

    /// Whether the customer is in the group. An unknown customer is not a member; an
    /// unknown group raises `cohort.UnknownGroup`.
    fn contains(&self, group: &Bound<'_, PyAny>, customer_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let group = group_text(group)?;
        let id = id_text(customer_id)?;
        self.inner.contains(&group, &id).map_err(to_py_err)
    }

    /// The groups the customer is in, in manifest order (empty for an unknown customer).
    fn groups_of(&self, customer_id: &Bound<'_, PyAny>) -> PyResult<Vec<&str>> {
        let id = id_text(customer_id)?;
        Ok(self.inner.groups_of(&id))
    }

    /// `contains` for many checks at once, answered in passes over all of them (several
    /// times faster per check than one call each), with the GIL released.
    ///
    /// `groups` is one group id for every check (a str) or one per check; `ids` one
    /// customer id per check (int or str). Both may be lists, tuples, numpy arrays or
    /// pyarrow arrays. Returns a numpy bool array (a list of bool when numpy is not
    /// installed). Raises `UnknownGroup` for the first unknown group, `ValueError` when
    /// the lengths differ.
    fn contains_many<'py>(
        &self,
        py: Python<'py>,
        groups: &Bound<'py, PyAny>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if ids.is_instance_of::<PyString>() || ids.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "ids must be a sequence of ids (a list, tuple, numpy or pyarrow array), not a \
                 single str",
            ));
        }
        let groups = Groups::from_python(groups)?;
        // Python objects are read here, with the GIL; buffers after it is released.
        let (texts, native) = match Batch::from_python(ids)? {
            Batch::Objects(objects) => {
                let mut texts = Texts::with_capacity(objects.len().unwrap_or(0));
                for id in objects.try_iter()? {
                    texts.push_id(&id?)?;
                }
                (Some(texts), None)
            }
            Batch::Native(native) => (None, Some(native)),
        };
        let inner = &self.inner;
        let answers = py.detach(move || {
            let texts = match (texts, native) {
                (Some(texts), _) => texts,
                (None, Some(native)) => native.into_texts().map_err(BatchError::Value)?,
                (None, None) => unreachable!("one of them is made"),
            };
            if let Some(n) = groups.len() {
                if n != texts.len() {
                    return Err(BatchError::Value(format!(
                        "groups and ids differ in length: {n} groups, {} ids",
                        texts.len()
                    )));
                }
            }
            // In chunks: one check list that stays in cache instead of one the size of the
            // batch (fresh pages, each faulted in).
            const CHUNK: usize = 16 * 1024;
            let mut answers = Vec::with_capacity(texts.len());
            let mut checks: Vec<(&str, &str)> = Vec::with_capacity(CHUNK);
            let mut pairs = groups.iter().zip(texts.iter()).peekable();
            while pairs.peek().is_some() {
                checks.clear();
                checks.extend(pairs.by_ref().take(CHUNK));
                let chunk = inner.contains_many(&checks).map_err(BatchError::Snapshot)?;
                answers.extend(chunk.into_iter().map(u8::from));
            }
            Ok(answers)
        });
        match answers {
            Ok(bytes) => python_attr!(py, "cohort._interop", "bool_array")?
                .call1((PyByteArray::new(py, &bytes),)),
            Err(BatchError::Snapshot(error)) => Err(to_py_err(error)),
            Err(BatchError::Value(message)) => Err(PyValueError::new_err(message)),
        }
    }

    /// A group's members as a pyarrow array of external ids, in bit order (ascending for
    /// integer ids that are their own bits): int64 for int64 ids, uint64 for uint64 ids,
    /// string for string ids.
    fn members<'py>(
        &self,
        py: Python<'py>,
        group: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let group = group_text(group)?.into_owned();
        let id_type = self.inner.manifest().id_type.clone();
        let identity = matches!(
            self.inner.manifest().id_mapping,
            cohort_snapshot::manifest::IdMappingEntry::Identity(_)
        );
        let inner = &self.inner;
        let (first, second) = detached(py, move || {
            let bitmap = inner.bitmap(&group).ok_or_else(|| Error::UnknownGroup {
                group: group.clone(),
                run_id: inner.run_id().to_string(),
            })?;
            let mut first: Vec<u8> = Vec::with_capacity(bitmap.len() as usize * 8);
            let mut second: Vec<u8> = Vec::new();
            match (id_type.as_str(), identity) {
                // Bit n is id n.
                (_, true) => {
                    for bit in &bitmap {
                        first.extend_from_slice(&i64::from(bit).to_ne_bytes());
                    }
                }
                ("int64", false) => {
                    for bit in &bitmap {
                        let id: i64 = parse_id(&inner.external_id(bit))?;
                        first.extend_from_slice(&id.to_ne_bytes());
                    }
                }
                ("uint64", false) => {
                    for bit in &bitmap {
                        let id: u64 = parse_id(&inner.external_id(bit))?;
                        first.extend_from_slice(&id.to_ne_bytes());
                    }
                }
                _ => {
                    first.extend_from_slice(&0i64.to_ne_bytes());
                    for bit in &bitmap {
                        second.extend_from_slice(inner.external_id(bit).as_bytes());
                        first.extend_from_slice(&(second.len() as i64).to_ne_bytes());
                    }
                }
            }
            Ok((first, second))
        })?;
        let kind = match self.inner.manifest().id_type.as_str() {
            "int64" => "int64",
            "uint64" => "uint64",
            _ => "utf8",
        };
        let payload = (kind, PyBytes::new(py, &first), PyBytes::new(py, &second));
        python_attr!(py, "cohort._interop", "members_array")?.call1((payload,))
    }

    fn __repr__(&self) -> String {
        format!(
            "<cohort.Snapshot run_id='{}' groups={} customers={}>",
            self.inner.run_id(),
            self.inner.groups().len(),
            self.inner.manifest().customers
        )
    }
}

impl Snapshot {
    fn unknown_group(&self, group: &str) -> PyErr {
        to_py_err(Error::UnknownGroup {
            group: group.to_string(),
            run_id: self.inner.run_id().to_string(),
        })
    }
}

/// An integer id from the dictionary; a dictionary whose ids don't parse is not this run's.
fn parse_id<T: std::str::FromStr>(text: &str) -> cohort_snapshot::Result<T> {
    text.parse().map_err(|_| Error::Export {
        reason: format!("the id dictionary holds '{text}', not an integer id"),
    })
}

/// The native module: `cohort._cohort`.
#[pymodule]
fn _cohort(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Snapshot>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
