//! `cohort._cohort`: the native half of the `cohort` Python package, a thin layer over
//! [`cohort_snapshot::Snapshot`] (no DataFusion).
//!
//! numpy and pyarrow are never linked: arrays come in and go out as plain `bytes` and
//! `bytearray`, and `cohort/_interop.py` turns them into (or out of) numpy and pyarrow
//! arrays. The GIL is released while a snapshot is opened and while batches are answered.

use std::borrow::Cow;
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

/// A customer id as text: a `str` as it is, an `int` (or anything with `__index__`, such as
/// a numpy integer) in its canonical decimal spelling.
fn id_text<'a>(id: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    if let Ok(s) = id.cast::<PyString>() {
        return s.to_cow();
    }
    if id.is_instance_of::<PyBool>() || id.is_instance_of::<PyFloat>() {
        return Err(type_error(id));
    }
    if let Ok(n) = id.extract::<i64>() {
        return Ok(Cow::Owned(n.to_string()));
    }
    if let Ok(n) = id.extract::<u64>() {
        return Ok(Cow::Owned(n.to_string()));
    }
    if id.is_instance_of::<PyInt>() {
        // Beyond 64 bits: no customer has it, but its spelling is still canonical.
        return Ok(Cow::Owned(id.str()?.to_cow()?.into_owned()));
    }
    Err(type_error(id))
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
        .map_err(|_| PyTypeError::new_err("a group id is a str"))?;
    group.cast::<PyString>()?.to_cow()
}

/// Many ids as one text buffer and the end of each id in it.
#[derive(Default)]
struct IdTexts {
    text: String,
    ends: Vec<usize>,
}

impl IdTexts {
    fn push(&mut self, id: &str) {
        self.text.push_str(id);
        self.ends.push(self.text.len());
    }

    fn push_display(&mut self, id: impl std::fmt::Display) {
        use std::fmt::Write;
        write!(self.text, "{id}").expect("writing to a String");
        self.ends.push(self.text.len());
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

/// A batch of ids as `cohort._interop.ids_payload` hands them over, before they are text.
enum IdBatch {
    /// Read from Python objects (each an int or a str), with the GIL.
    Texts(IdTexts),
    /// Native-endian 64-bit integers.
    Int64(Vec<u8>),
    /// Native-endian unsigned 64-bit integers.
    UInt64(Vec<u8>),
    /// UTF-8 text and native-endian int64 offsets (n + 1 of them) into it.
    Utf8 { offsets: Vec<u8>, data: Vec<u8> },
}

impl IdBatch {
    /// Lists and tuples are read here; anything else goes through `ids_payload` (numpy,
    /// pyarrow, other iterables).
    fn from_python(ids: &Bound<'_, PyAny>) -> PyResult<IdBatch> {
        if let Ok(list) = ids.cast::<PyList>() {
            return IdBatch::read_objects(list.len(), list.iter());
        }
        if let Ok(tuple) = ids.cast::<PyTuple>() {
            return IdBatch::read_objects(tuple.len(), tuple.iter());
        }
        if ids.is_instance_of::<PyString>() || ids.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "ids must be a sequence of ids (a list, tuple, numpy or pyarrow array), not a \
                 single str",
            ));
        }
        let py = ids.py();
        let payload = python_attr!(py, "cohort._interop", "ids_payload")?.call1((ids,))?;
        let (kind, first, second): (String, Bound<'_, PyAny>, Option<Bound<'_, PyAny>>) =
            payload.extract()?;
        let bytes = |b: &Bound<'_, PyAny>| -> PyResult<Vec<u8>> {
            Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
        };
        Ok(match kind.as_str() {
            "objects" => {
                let list = first.cast::<PyList>()?;
                IdBatch::read_objects(list.len(), list.iter())?
            }
            "int64" => IdBatch::Int64(bytes(&first)?),
            "uint64" => IdBatch::UInt64(bytes(&first)?),
            "utf8" => IdBatch::Utf8 {
                offsets: bytes(&first)?,
                data: second.as_ref().map(bytes).transpose()?.unwrap_or_default(),
            },
            other => {
                return Err(PyRuntimeError::new_err(format!(
                    "cohort._interop gave an unknown id batch kind '{other}'"
                )))
            }
        })
    }

    fn read_objects<'py>(
        len: usize,
        objects: impl Iterator<Item = Bound<'py, PyAny>>,
    ) -> PyResult<IdBatch> {
        let mut texts = IdTexts::default();
        texts.ends.reserve(len);
        texts.text.reserve(len * 8);
        for id in objects {
            texts.push(&id_text(&id)?);
        }
        Ok(IdBatch::Texts(texts))
    }

    /// The ids as text (no Python object is touched: callable without the GIL).
    fn into_texts(self) -> Result<IdTexts, BatchError> {
        let mut texts = IdTexts::default();
        match self {
            IdBatch::Texts(texts) => return Ok(texts),
            IdBatch::Int64(bytes) => {
                texts.ends.reserve(bytes.len() / 8);
                for chunk in bytes.chunks_exact(8) {
                    texts.push_display(i64::from_ne_bytes(chunk.try_into().expect("8 bytes")));
                }
            }
            IdBatch::UInt64(bytes) => {
                texts.ends.reserve(bytes.len() / 8);
                for chunk in bytes.chunks_exact(8) {
                    texts.push_display(u64::from_ne_bytes(chunk.try_into().expect("8 bytes")));
                }
            }
            IdBatch::Utf8 { offsets, data } => {
                let offsets: Vec<usize> = offsets
                    .chunks_exact(8)
                    .map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes")) as usize)
                    .collect();
                texts.ends.reserve(offsets.len().saturating_sub(1));
                for pair in offsets.windows(2) {
                    let id = data
                        .get(pair[0]..pair[1])
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .ok_or_else(|| {
                            BatchError::Value("string ids: bad offsets or UTF-8".to_string())
                        })?;
                    texts.push(id);
                }
            }
        }
        Ok(texts)
    }
}

/// Why a batch was refused: the caller's input, or the reader (an unknown group).
enum BatchError {
    Value(String),
    Snapshot(Error),
}

/// Group names of a batch: the distinct names and, per check, which of them it names.
struct GroupBatch {
    names: Vec<String>,
    /// Index into `names` per check; `None` when one str stands for every check.
    of_check: Option<Vec<u32>>,
}

impl GroupBatch {
    fn from_python(groups: &Bound<'_, PyAny>) -> PyResult<GroupBatch> {
        if let Ok(group) = groups.cast::<PyString>() {
            return Ok(GroupBatch {
                names: vec![group.to_cow()?.into_owned()],
                of_check: None,
            });
        }
        let py = groups.py();
        let items: Bound<'_, PyList> = match groups.cast::<PyList>() {
            Ok(list) => list.clone(),
            Err(_) => python_attr!(py, "cohort._interop", "groups_list")?
                .call1((groups,))?
                .cast_into::<PyList>()?,
        };
        let mut names: Vec<String> = Vec::new();
        let mut index: std::collections::HashMap<String, u32> = Default::default();
        let mut of_check = Vec::with_capacity(items.len());
        // The same str object over and over (`["vip"] * n`) is read once.
        let mut last: Option<(*mut pyo3::ffi::PyObject, u32)> = None;
        for item in items.iter() {
            if let Some((ptr, i)) = last {
                if ptr == item.as_ptr() {
                    of_check.push(i);
                    continue;
                }
            }
            let name = group_text(&item)?;
            let i = match index.get(name.as_ref()) {
                Some(&i) => i,
                None => {
                    let i = names.len() as u32;
                    names.push(name.to_string());
                    index.insert(name.into_owned(), i);
                    i
                }
            };
            last = Some((item.as_ptr(), i));
            of_check.push(i);
        }
        Ok(GroupBatch {
            names,
            of_check: Some(of_check),
        })
    }

    fn name_of(&self, check: usize) -> &str {
        match &self.of_check {
            Some(of_check) => &self.names[of_check[check] as usize],
            None => &self.names[0],
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
        let groups = GroupBatch::from_python(groups)?;
        let batch = IdBatch::from_python(ids)?;
        let inner = &self.inner;
        let answers = py.detach(move || {
            let texts = batch.into_texts()?;
            if let Some(of_check) = &groups.of_check {
                if of_check.len() != texts.len() {
                    return Err(BatchError::Value(format!(
                        "groups and ids differ in length: {} groups, {} ids",
                        of_check.len(),
                        texts.len()
                    )));
                }
            }
            let checks: Vec<(&str, &str)> = texts
                .iter()
                .enumerate()
                .map(|(i, id)| (groups.name_of(i), id))
                .collect();
            let answers = inner.contains_many(&checks).map_err(BatchError::Snapshot)?;
            Ok(answers.into_iter().map(u8::from).collect::<Vec<u8>>())
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
