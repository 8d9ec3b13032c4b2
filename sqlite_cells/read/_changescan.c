/* What a session changeset changed, table by table, read in one pass over its bytes.
 *
 * A live query re-runs when a commit's write set meets its read set (R51, read/_changes.py):
 * which columns of which tables the commit's changesets changed. Read with apsw's change
 * iterator, each change became a Python object with its values decoded: ~20 µs of the
 * scheduler thread for a one-row UPDATE, and an UPDATE of a million rows held the thread (and
 * every subscriber of the runtime) for seconds. Only the value *types* are needed -- an UPDATE
 * marks a column it left alone as "undefined" -- so this reads the changeset format directly,
 * with the GIL released, and builds Python objects once per table at the end.
 *
 * The changeset format (SQLite's session extension, "Changeset Format"):
 *   table header:  'T', varint column count N, N bytes (non-zero: the column is part of the
 *                  primary key), the table's name in UTF-8 ending in a 0 byte
 *   change:        op byte (SQLITE_INSERT 18, SQLITE_UPDATE 23, SQLITE_DELETE 9), the
 *                  indirect flag byte, then one record (INSERT: the new row, DELETE: the old
 *                  row) or two (UPDATE: old values, then new values)
 *   record:        N values, each a type byte and its data: 0 undefined (no data), 5 NULL (no
 *                  data), 1 integer and 2 real (8 bytes), 3 text and 4 blob (varint length,
 *                  then that many bytes)
 * Varints are SQLite's: big-endian groups of 7 bits, the high bit set on all but the last, the
 * ninth byte (if any) whole. Anything else -- a patchset ('P'), a truncated record, an unknown
 * type, a table with no name or a header with no change after it (SQLite writes neither) -- is
 * a ValueError: the caller then takes the whole database as changed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#define OP_INSERT 18
#define OP_UPDATE 23
#define OP_DELETE 9

typedef struct {
    const unsigned char *name; /* in the changeset's bytes, 0-terminated */
    size_t name_len;
    Py_ssize_t columns;
    const unsigned char *keys; /* `columns` primary-key flags, in the changeset's bytes */
    unsigned char *changed;    /* `columns` flags: an UPDATE gave the column a value */
    int all;                   /* a row inserted or deleted, or a key changed */
} Table;

typedef struct {
    Table *items;
    Py_ssize_t count, room;
} Tables;

typedef struct {
    const unsigned char *p, *end;
    const char *problem; /* set on the first malformed byte */
} Reader;

static int varint(Reader *r, unsigned long long *out) {
    unsigned long long v = 0;
    for (int i = 0; i < 9; i++) {
        if (r->p >= r->end) {
            r->problem = "a length runs past the end";
            return -1;
        }
        unsigned char b = *r->p++;
        if (i == 8) {
            *out = (v << 8) | b;
            return 0;
        }
        v = (v << 7) | (b & 0x7f);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1; /* (not reached) */
}

/* Pass over one record of `columns` values; with `given`, flag each column that has a value
 * (a type other than undefined). */
static int record(Reader *r, Py_ssize_t columns, unsigned char *given) {
    for (Py_ssize_t i = 0; i < columns; i++) {
        if (r->p >= r->end) {
            r->problem = "a record is cut short";
            return -1;
        }
        unsigned char type = *r->p++;
        unsigned long long size;
        switch (type) {
        case 0: /* undefined: an UPDATE left the column alone */
            continue;
        case 5: /* NULL */
            break;
        case 1: /* integer */
        case 2: /* real */
            size = 8;
            if ((unsigned long long)(r->end - r->p) < size) {
                r->problem = "a number is cut short";
                return -1;
            }
            r->p += size;
            break;
        case 3: /* text */
        case 4: /* blob */
            if (varint(r, &size) < 0) return -1;
            if ((unsigned long long)(r->end - r->p) < size) {
                r->problem = "a text or blob runs past the end";
                return -1;
            }
            r->p += size;
            break;
        default:
            r->problem = "a value has an unknown type";
            return -1;
        }
        if (given != NULL) given[i] = 1;
    }
    return 0;
}

/* The table a header names: one already met of that name, or a new one. The header's own
 * column count and key flags, which its changes' records follow, are `*columns_out` and
 * `*keys_out` (a table met again with another shape keeps its first, and is changed whole). */
static Table *header(Reader *r, Tables *tables, Py_ssize_t *columns_out,
                     const unsigned char **keys_out) {
    unsigned long long columns;
    if (varint(r, &columns) < 0) return NULL;
    if (columns == 0 || columns > 32767) { /* SQLite's own limit on a table's columns */
        r->problem = "a table header has no columns, or too many";
        return NULL;
    }
    if ((unsigned long long)(r->end - r->p) < columns) {
        r->problem = "a table header is cut short";
        return NULL;
    }
    const unsigned char *keys = r->p;
    r->p += columns;
    *columns_out = (Py_ssize_t)columns;
    *keys_out = keys;
    const unsigned char *name = r->p;
    const unsigned char *stop = memchr(name, 0, (size_t)(r->end - name));
    if (stop == NULL) {
        r->problem = "a table name has no end";
        return NULL;
    }
    r->p = stop + 1;
    size_t name_len = (size_t)(stop - name);
    if (name_len == 0) {
        r->problem = "a table has no name";
        return NULL;
    }
    for (Py_ssize_t i = 0; i < tables->count; i++) {
        Table *t = &tables->items[i];
        if (t->name_len == name_len && memcmp(t->name, name, name_len) == 0) {
            if (t->columns != (Py_ssize_t)columns || memcmp(t->keys, keys, columns) != 0)
                t->all = 1; /* met again with another shape: taken as changed whole */
            return t;
        }
    }
    if (tables->count == tables->room) {
        Py_ssize_t room = tables->room ? tables->room * 2 : 8;
        Table *items = realloc(tables->items, (size_t)room * sizeof(Table));
        if (items == NULL) {
            r->problem = NULL; /* (out of memory: told apart by the caller) */
            return NULL;
        }
        tables->items = items;
        tables->room = room;
    }
    unsigned char *changed = calloc((size_t)columns, 1);
    if (changed == NULL) return NULL;
    Table *t = &tables->items[tables->count++];
    t->name = name;
    t->name_len = name_len;
    t->columns = (Py_ssize_t)columns;
    t->keys = keys;
    t->changed = changed;
    t->all = 0;
    return t;
}

/* One pass over the changeset; 0, or -1 with r->problem set (NULL: out of memory). */
static int scan_bytes(Reader *r, Tables *tables) {
    Table *table = NULL;
    Py_ssize_t columns = 0;            /* the current header's: its records have as many */
    const unsigned char *keys = NULL;  /* the current header's key flags */
    unsigned char *given = NULL;
    Py_ssize_t given_room = 0;
    int changed_since = 0; /* a change came after the current header */
    int result = -1;
    while (r->p < r->end) {
        unsigned char op = *r->p++;
        if (op == 'T') {
            if (table != NULL && !changed_since) {
                r->problem = "a table header has no changes"; /* SQLite writes none such */
                goto done;
            }
            table = header(r, tables, &columns, &keys);
            if (table == NULL) goto done;
            changed_since = 0;
            if (given_room < columns) {
                unsigned char *grown = realloc(given, (size_t)columns);
                if (grown == NULL) {
                    r->problem = NULL;
                    goto done;
                }
                given = grown;
                given_room = columns;
            }
            continue;
        }
        if (table == NULL) {
            r->problem = op == 'P' ? "it is a patchset" : "a change comes before any table";
            goto done;
        }
        if (r->p >= r->end) {
            r->problem = "a change is cut short";
            goto done;
        }
        r->p++; /* the indirect flag */
        changed_since = 1;
        switch (op) {
        case OP_INSERT:
        case OP_DELETE:
            if (record(r, columns, NULL) < 0) goto done;
            table->all = 1;
            break;
        case OP_UPDATE:
            if (record(r, columns, NULL) < 0) goto done; /* the old values */
            memset(given, 0, (size_t)columns);
            if (record(r, columns, given) < 0) goto done; /* the new ones */
            if (table->all) break; /* (changed whole already: nothing to add) */
            for (Py_ssize_t i = 0; i < columns; i++) {
                if (!given[i]) continue;
                table->changed[i] = 1;
                /* A key changed to one SQLite finds equal (see read/_changes.py) counts as
                 * the INSERT or DELETE it stands for. */
                if (keys[i]) table->all = 1;
            }
            break;
        default:
            r->problem = op == 'P' ? "it is a patchset" : "a change has an unknown kind";
            goto done;
        }
    }
    if (table != NULL && !changed_since) {
        r->problem = "a table header has no changes";
        goto done;
    }
    result = 0;
done:
    free(given);
    return result;
}

static void free_tables(Tables *tables) {
    for (Py_ssize_t i = 0; i < tables->count; i++) free(tables->items[i].changed);
    free(tables->items);
}

/* {name: (column count, frozenset of changed column indexes, or None)} */
static PyObject *result_of(Tables *tables) {
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < tables->count; i++) {
        Table *t = &tables->items[i];
        PyObject *name =
            PyUnicode_DecodeUTF8((const char *)t->name, (Py_ssize_t)t->name_len, "surrogateescape");
        if (name == NULL) goto fail;
        PyObject *changed;
        if (t->all) {
            changed = Py_NewRef(Py_None);
        } else {
            changed = PyFrozenSet_New(NULL);
            for (Py_ssize_t c = 0; changed != NULL && c < t->columns; c++) {
                if (!t->changed[c]) continue;
                PyObject *index = PyLong_FromSsize_t(c);
                if (index == NULL || PySet_Add(changed, index) < 0) Py_CLEAR(changed);
                Py_XDECREF(index);
            }
        }
        PyObject *value = changed == NULL ? NULL : Py_BuildValue("(nN)", t->columns, changed);
        if (value == NULL || PyDict_SetItem(out, name, value) < 0) {
            Py_DECREF(name);
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(name);
        Py_DECREF(value);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *scan(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Reader r = {view.buf, (const unsigned char *)view.buf + view.len, NULL};
    Tables tables = {NULL, 0, 0};
    int scanned;
    Py_BEGIN_ALLOW_THREADS
    scanned = scan_bytes(&r, &tables);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (scanned < 0) {
        if (r.problem == NULL)
            PyErr_NoMemory();
        else
            PyErr_Format(PyExc_ValueError, "not a changeset SQLite wrote: %s (at byte %zd)",
                         r.problem, (Py_ssize_t)(r.p - (const unsigned char *)view.buf));
    } else {
        out = result_of(&tables);
    }
    free_tables(&tables);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(changeset) -> {table: (column count, changed column indexes or None)}\n\n"
     "What a session changeset changed: for each table it names, its column count and the\n"
     "indexes of the columns its UPDATEs gave a value, or None when it inserted or deleted a\n"
     "row or changed a primary key column. ValueError when the bytes are not a changeset."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_changescan", "What a session changeset changed, read in C.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__changescan(void) { return PyModule_Create(&module); }
