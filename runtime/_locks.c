/* SQLite's file locks, held so that nothing else in the process can drop them.
 *
 * SQLite's unix VFS locks a database file and its -shm with POSIX record locks (F_SETLK).
 * Those belong to the process: closing *any* descriptor of a file drops all of them, and they
 * never conflict with the process's own other locks. So a second SQLite library in the same
 * process -- Python's sqlite3 module next to apsw's copy -- neither sees the runtime's locks
 * (its first connection takes a file in use for unused and resets the -shm the runtime has
 * mapped: a bus error) nor leaves them in place (its close drops them; its last close
 * checkpoints and deletes the -wal under the runtime's connections).
 *
 * This module gives apsw's SQLite replacements for two of its system calls ("fcntl" and
 * "close", through sqlite3_vfs.xSetSystemCall) that take the same locks as open file
 * description locks (F_OFD_SETLK, Linux 3.15+). Those belong to one open file description:
 * closing another descriptor leaves them, and they conflict with every other lock, the same
 * process's classic ones included. SQLite shares one lock state per file among its
 * connections of a process (each with its own descriptor) and unlocks through whichever
 * descriptor it has at hand, so every lock of one file is taken through one description:
 * that of the first descriptor of SQLite's to lock the file (or one opened here, when that
 * descriptor is read-only), kept while SQLite has the file open: when SQLite closes that
 * descriptor while other connections of the process have the file, it is kept open here
 * instead (SQLite closes a descriptor only once the file holds none of its locks, but another
 * connection may be taking one on it at that moment).
 *
 * Closing a descriptor still drops the classic locks another SQLite library of the process holds
 * on the file (Python's sqlite3 writing a file the runtime reads as a source): its connection's
 * read lock on the -shm's "dead man switch" byte went with the close of a read connection of
 * ours, and our next connection took the -shm for unused and truncated it under that library's
 * mapping (a bus error). So a descriptor of a file on which this process holds a classic lock
 * is not closed but parked, lock-free, and handed back to SQLite when it opens that file again
 * (a third replaced system call, "open"): parked descriptors number at most as many as SQLite
 * had open at once. One is closed once its file is unlinked (no connection can reach it by
 * name) or, handed back, at a close when no classic lock is left.
 *
 * The same "open", on a thread reading sources (set_reading_sources), opens the -wal or -shm of
 * an injected source (a file registered with forbid_companions) only if it is there: a read-only connection to a file in WAL mode creates
 * them when they are missing, and nothing of ours is ever created beside another program's file
 * (its program may remove them between the runtime's look for them and SQLite's open; the read
 * then fails with SQLITE_CANTOPEN and is made again, without them).
 *
 * A forked child starts with no file known (its SQLite, like any copy, must open files anew).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __linux__
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#endif

#if defined(__linux__) && defined(F_OFD_SETLK)

typedef struct {
    int fd; /* a descriptor of SQLite's that took part in locking */
    dev_t dev;
    ino_t ino;
} Seen;

typedef struct {
    dev_t dev;
    ino_t ino;
    int owner; /* the descriptor whose open file description holds the file's locks, or -1 */
    int own;   /* whether `owner` was opened here (else it is one of SQLite's, in `seen`) */
    int users; /* how many entries of `seen` name this file */
} File;

typedef struct {
    dev_t dev;
    ino_t ino;
} Source;

typedef struct {
    int fd; /* a descriptor not closed: the process holds classic locks on its file */
    dev_t dev;
    ino_t ino;
    int mode; /* its access mode (O_ACCMODE bits): handed back only to an open asking for it */
} Parked;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static Seen *seen;
static size_t n_seen, cap_seen;
static File *files;
static size_t n_files, cap_files;
static Parked *parked;
static size_t n_parked, cap_parked;

static File *file_of(dev_t dev, ino_t ino) {
    for (size_t i = 0; i < n_files; i++) {
        if (files[i].dev == dev && files[i].ino == ino) return &files[i];
    }
    return NULL;
}

static int grow(void **items, size_t *cap, size_t used, size_t size) {
    if (used < *cap) return 0;
    size_t more = *cap ? *cap * 2 : 16;
    void *bigger = realloc(*items, more * size);
    if (bigger == NULL) return -1;
    *items = bigger;
    *cap = more;
    return 0;
}

/* Whether this process holds a classic (process-associated) lock on the file: another SQLite
 * library's, since ours are open file description locks (whose pid reads -1). Asked of the
 * kernel through `fd`: no lock at all conflicts, no; the first that does is this process's,
 * yes (the other library's locks come first in the kernel's list when it opened the file
 * first, and stay there while it holds one). Another owner's first: looked up in /proc/locks,
 * which the kernel lists a page at a time, so a lock taken or dropped meanwhile may hide one
 * (another process locking the same file). Unknown: no. */
static int classic_lock_on(int fd, dev_t dev, ino_t ino) {
    struct flock probe = {0};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    if (fcntl(fd, F_OFD_GETLK, &probe) != 0 || probe.l_type == F_UNLCK) return 0;
    if (probe.l_pid == getpid()) return 1;
    FILE *locks = fopen("/proc/locks", "re");
    if (locks == NULL) return 0;
    char want[64], line[256], kind[16], id[64];
    snprintf(want, sizeof want, "%02x:%02x:%lu", major(dev), minor(dev), (unsigned long)ino);
    long me = (long)getpid(), pid;
    int found = 0;
    while (!found && fgets(line, sizeof line, locks) != NULL) {
        /* "1: POSIX  ADVISORY  READ 4242 fe:00:4087838 128 128"; a waiter's line has "->" */
        if (strstr(line, "->") != NULL) continue;
        if (sscanf(line, "%*d: %15s %*s %*s %ld %63s", kind, &pid, id) != 3) continue;
        found = strcmp(kind, "POSIX") == 0 && pid == me && strcmp(id, want) == 0;
    }
    fclose(locks);
    return found;
}

/* Close parked descriptors whose file is unlinked. Under mu. */
static void close_unlinked(void) {
    for (size_t i = 0; i < n_parked;) {
        struct stat st;
        if (fstat(parked[i].fd, &st) == 0 && st.st_nlink > 0) {
            i++;
            continue;
        }
        close(parked[i].fd);
        parked[i] = parked[--n_parked];
    }
}

/* Close `fd`, a descriptor of the file (dev, ino) -- or park it while the process holds a
 * classic lock on that file, which the close would drop. Under mu. */
static int release(int fd, dev_t dev, ino_t ino) {
    if (!classic_lock_on(fd, dev, ino)) return close(fd);
    close_unlinked();
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || grow((void **)&parked, &cap_parked, n_parked, sizeof(Parked)) != 0) {
        return close(fd);
    }
    /* Locks of ours taken through it (none once SQLite closes, but a kept description) go. */
    struct flock all = {0};
    all.l_type = F_UNLCK;
    all.l_whence = SEEK_SET;
    fcntl(fd, F_OFD_SETLK, &all);
    parked[n_parked].fd = fd;
    parked[n_parked].dev = dev;
    parked[n_parked].ino = ino;
    parked[n_parked].mode = flags & O_ACCMODE;
    n_parked++;
    return 0;
}

/* Forget seen[i] (closed as the file's last user, or found to name another file). Under mu.
 * A description opened (or kept) here is closed with the file's last user. */
static void forget(size_t i) {
    int fd = seen[i].fd;
    File *file = file_of(seen[i].dev, seen[i].ino);
    seen[i] = seen[--n_seen];
    if (file == NULL) return;
    if (!file->own && file->owner == fd) file->owner = -1;
    if (--file->users > 0) return;
    if (file->own) release(file->owner, file->dev, file->ino);
    *file = files[--n_files];
}

/* A parked descriptor of the file (dev, ino) open in access mode `mode`, taken out of the
 * parked ones, or -1. Under mu. */
static int take_parked(dev_t dev, ino_t ino, int mode) {
    for (size_t i = 0; i < n_parked; i++) {
        if (parked[i].dev != dev || parked[i].ino != ino || parked[i].mode != mode) continue;
        int fd = parked[i].fd;
        parked[i] = parked[--n_parked];
        return fd;
    }
    return -1;
}

/* The description a file's locks are held on, chosen when a descriptor `fd` of SQLite's locks
 * it and it has none: `fd` itself when it is open for writing (a write lock needs that),
 * else one opened here for reading and writing (the first to lock a file is often a
 * read-only connection, and the process's writer may ask for a write lock later). A file
 * this process may only read keeps a duplicate of `fd`: only read locks are asked of it. */
static int choose_owner(File *file, int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_ACCMODE) == O_RDWR) {
        file->owner = fd;
        file->own = 0;
        return fd;
    }
    int owner = take_parked(file->dev, file->ino, O_RDWR);
    if (owner >= 0) {
        file->owner = owner;
        file->own = 1;
        return owner;
    }
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    owner = open(link, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (owner < 0) owner = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (owner < 0) return -1;
    file->owner = owner;
    file->own = 1;
    return owner;
}

/* The descriptor that holds the locks of fd's file, or -1 (the caller then locks as before).
 * Under mu. */
static int owner_of(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    File *file = NULL;
    for (size_t i = 0; i < n_seen; i++) {
        if (seen[i].fd != fd) continue;
        if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino) {
            file = file_of(st.st_dev, st.st_ino);
            if (file == NULL) return -1;
            return file->owner >= 0 ? file->owner : choose_owner(file, fd);
        }
        forget(i); /* the number was closed behind SQLite's back and reused */
        break;
    }
    if (grow((void **)&seen, &cap_seen, n_seen, sizeof(Seen)) != 0) return -1;
    file = file_of(st.st_dev, st.st_ino);
    if (file == NULL) {
        if (grow((void **)&files, &cap_files, n_files, sizeof(File)) != 0) return -1;
        file = &files[n_files];
        file->dev = st.st_dev;
        file->ino = st.st_ino;
        file->owner = -1;
        file->own = 0;
        file->users = 0;
        if (choose_owner(file, fd) < 0) return -1;
        n_files++;
    } else if (file->owner < 0 && choose_owner(file, fd) < 0) {
        return -1;
    }
    file->users++;
    seen[n_seen].fd = fd;
    seen[n_seen].dev = st.st_dev;
    seen[n_seen].ino = st.st_ino;
    n_seen++;
    return file->owner;
}

static int held_fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int ofd;
    switch (cmd) {
    case F_SETLK: ofd = F_OFD_SETLK; break;
    case F_SETLKW: ofd = F_OFD_SETLKW; break;
    case F_GETLK: ofd = F_OFD_GETLK; break;
    default: return fcntl(fd, cmd, arg);
    }
    pthread_mutex_lock(&mu);
    int owner = owner_of(fd);
    pthread_mutex_unlock(&mu);
    if (owner < 0) return fcntl(fd, cmd, arg);
    /* The owner stays open: fd is one of its users, and SQLite is not closing it now. */
    struct flock *given = (struct flock *)arg;
    struct flock lock = *given;
    lock.l_pid = 0; /* required of open file description locks */
    int rc = fcntl(owner, ofd, &lock);
    if (rc < 0 && errno == EINVAL) return fcntl(fd, cmd, arg); /* a file system without them */
    if (rc == 0 && cmd == F_GETLK) *given = lock;
    return rc;
}

static int held_close(int fd) {
    pthread_mutex_lock(&mu);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        pthread_mutex_unlock(&mu);
        return close(fd);
    }
    for (size_t i = 0; i < n_seen; i++) {
        if (seen[i].fd != fd) continue;
        File *file = file_of(seen[i].dev, seen[i].ino);
        if (file != NULL && !file->own && file->owner == fd && file->users > 1) {
            /* Another connection of the file may be taking a lock on this description right
             * now (SQLite decides to close before it closes, outside its lock mutex): the
             * descriptor is kept open, as ours, until the file's last user goes. */
            file->own = 1;
            file->users--;
            seen[i] = seen[--n_seen];
            pthread_mutex_unlock(&mu);
            return 0;
        }
        forget(i);
        break;
    }
    int rc = release(fd, st.st_dev, st.st_ino);
    pthread_mutex_unlock(&mu);
    return rc;
}

/* Files read as injected sources, by device and inode: SQLite creates no -wal or -shm
 * beside them (see forbid_companions). Only ever added to. */
static Source *sources;
static size_t n_sources, cap_sources;
/* Whether this thread is reading a source now (see reading_sources): only its opens are held
 * to that; the source's own program may be in this process, and its connections create them. */
static __thread int reading_sources;

/* Whether `path` is the -wal or -shm of a source file (its name without the suffix names one).
 * Under mu. */
static int source_companion(const char *path) {
    size_t n = strlen(path);
    if (n <= 4 || (strcmp(path + n - 4, "-wal") != 0 && strcmp(path + n - 4, "-shm") != 0)) {
        return 0;
    }
    char *base = strndup(path, n - 4);
    if (base == NULL) return 0;
    struct stat st;
    int found = stat(base, &st);
    free(base);
    if (found != 0) return 0;
    for (size_t i = 0; i < n_sources; i++) {
        if (sources[i].dev == st.st_dev && sources[i].ino == st.st_ino) return 1;
    }
    return 0;
}

/* The device and inode of the last database file SQLite opened on this thread (a regular file,
 * not one of its companions), until last_opened takes them: the file a connection opened, told from the file
 * its path named a moment before or after (a source swapped at that very moment, R60). */
static __thread int opened_known;
static __thread dev_t opened_dev;
static __thread ino_t opened_ino;

/* Whether `path` names a -wal, -shm or -journal: a companion, not a database file. */
static int companion_name(const char *path) {
    size_t n = strlen(path);
    return (n > 4 && (strcmp(path + n - 4, "-wal") == 0 || strcmp(path + n - 4, "-shm") == 0)) ||
           (n > 8 && strcmp(path + n - 8, "-journal") == 0);
}

static int noting_opened(const char *path, int fd) {
    struct stat st;
    /* (A regular file: SQLite also opens /dev/urandom, and directories to sync them.) */
    if (fd >= 0 && !companion_name(path) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        opened_known = 1;
        opened_dev = st.st_dev;
        opened_ino = st.st_ino;
    }
    return fd;
}

/* SQLite's open: a parked descriptor of the file at `path`, when there is one of the access
 * mode asked for, else a new one. A source's -wal or -shm is opened only if it is there: a
 * read-only connection to a file in WAL mode would create them (its program removed them
 * after it looked for them), and nothing of ours is ever created beside a source (R60). */
static int held_open(const char *path, int flags, int mode) {
    pthread_mutex_lock(&mu);
    if ((flags & O_CREAT) && reading_sources && n_sources > 0 && source_companion(path)) {
        flags &= ~(O_CREAT | O_EXCL);
    }
    if (n_parked > 0 && !(flags & O_EXCL)) {
        struct stat st;
        int found = (flags & O_NOFOLLOW) ? lstat(path, &st) : stat(path, &st);
        int fd = found == 0 ? take_parked(st.st_dev, st.st_ino, flags & O_ACCMODE) : -1;
        if (fd >= 0) {
            pthread_mutex_unlock(&mu);
            return noting_opened(path, fd);
        }
    }
    pthread_mutex_unlock(&mu);
    return noting_opened(path, open(path, flags, mode));
}

/* The files SQLite had open in the process this one was forked from (device and inode): its
 * record of them -- which it locks, through which descriptors -- was copied into this process,
 * and the descriptors share the parent's open file descriptions, so the locks taken through
 * them here are the parent's own and exclude nothing. A connection opened to such a file here
 * would write beside the parent's writers unguarded (commits lost): it is refused (see
 * runtime/_fork.py). Only ever added to, in the child. */
static Source *inherited;
static size_t n_inherited, cap_inherited;

static void inherit(dev_t dev, ino_t ino) {
    for (size_t i = 0; i < n_inherited; i++) {
        if (inherited[i].dev == dev && inherited[i].ino == ino) return;
    }
    if (grow((void **)&inherited, &cap_inherited, n_inherited, sizeof(Source)) != 0) return;
    inherited[n_inherited].dev = dev;
    inherited[n_inherited].ino = ino;
    n_inherited++;
}

static void before_fork(void) { pthread_mutex_lock(&mu); }
static void after_fork_parent(void) { pthread_mutex_unlock(&mu); }
static void after_fork_child(void) {
    for (size_t i = 0; i < n_seen; i++) inherit(seen[i].dev, seen[i].ino);
    for (size_t i = 0; i < n_files; i++) inherit(files[i].dev, files[i].ino);
    for (size_t i = 0; i < n_files; i++) {
        if (files[i].own) close(files[i].owner);
    }
    for (size_t i = 0; i < n_parked; i++) close(parked[i].fd);
    n_parked = 0;
    n_files = 0;
    n_seen = 0;
    pthread_mutex_unlock(&mu);
}

static int at_fork_registered;

/* Whether this kernel takes open file description locks (Linux 3.15 and later). */
static int ofd_locks_work(void) {
    FILE *scratch = tmpfile();
    if (scratch == NULL) return 0;
    struct flock lock = {0};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    int works = fcntl(fileno(scratch), F_OFD_GETLK, &lock) == 0;
    fclose(scratch);
    return works;
}

static PyObject *system_calls(PyObject *self, PyObject *unused) {
    if (!ofd_locks_work()) Py_RETURN_NONE;
    if (!at_fork_registered) {
        if (pthread_atfork(before_fork, after_fork_parent, after_fork_child) != 0) {
            return PyErr_NoMemory();
        }
        at_fork_registered = 1;
    }
    return Py_BuildValue("{s:K,s:K,s:K}", "fcntl", (unsigned long long)(uintptr_t)held_fcntl,
                         "close", (unsigned long long)(uintptr_t)held_close, "open",
                         (unsigned long long)(uintptr_t)held_open);
}

static PyObject *forbid_companions(PyObject *self, PyObject *args) {
    unsigned long long dev, ino;
    if (!PyArg_ParseTuple(args, "KK", &dev, &ino)) return NULL;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_sources; i++) {
        if (sources[i].dev == (dev_t)dev && sources[i].ino == (ino_t)ino) {
            pthread_mutex_unlock(&mu);
            Py_RETURN_NONE;
        }
    }
    if (grow((void **)&sources, &cap_sources, n_sources, sizeof(Source)) != 0) {
        pthread_mutex_unlock(&mu);
        return PyErr_NoMemory();
    }
    sources[n_sources].dev = (dev_t)dev;
    sources[n_sources].ino = (ino_t)ino;
    n_sources++;
    pthread_mutex_unlock(&mu);
    Py_RETURN_NONE;
}

static PyObject *set_reading_sources(PyObject *self, PyObject *arg) {
    int was = reading_sources;
    int now = PyObject_IsTrue(arg);
    if (now < 0) return NULL;
    reading_sources = now;
    return PyBool_FromLong(was);
}

static PyObject *inherited_file(PyObject *self, PyObject *args) {
    unsigned long long dev, ino;
    if (!PyArg_ParseTuple(args, "KK", &dev, &ino)) return NULL;
    int found = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_inherited && !found; i++) {
        found = inherited[i].dev == (dev_t)dev && inherited[i].ino == (ino_t)ino;
    }
    pthread_mutex_unlock(&mu);
    return PyBool_FromLong(found);
}

static PyObject *last_opened(PyObject *self, PyObject *unused) {
    if (!opened_known) Py_RETURN_NONE;
    opened_known = 0;
    return Py_BuildValue("(KK)", (unsigned long long)opened_dev, (unsigned long long)opened_ino);
}

static PyObject *files_known(PyObject *self, PyObject *unused) {
    pthread_mutex_lock(&mu);
    size_t n = n_files, m = n_seen;
    pthread_mutex_unlock(&mu);
    return Py_BuildValue("(nn)", (Py_ssize_t)n, (Py_ssize_t)m);
}

#else /* no open file description locks here: SQLite's own calls stay */

static PyObject *system_calls(PyObject *self, PyObject *unused) { Py_RETURN_NONE; }
static PyObject *forbid_companions(PyObject *self, PyObject *args) { Py_RETURN_NONE; }
static PyObject *set_reading_sources(PyObject *self, PyObject *arg) { Py_RETURN_FALSE; }
static PyObject *last_opened(PyObject *self, PyObject *unused) { Py_RETURN_NONE; }
static PyObject *inherited_file(PyObject *self, PyObject *args) { Py_RETURN_FALSE; }
static PyObject *files_known(PyObject *self, PyObject *unused) {
    return Py_BuildValue("(nn)", (Py_ssize_t)0, (Py_ssize_t)0);
}

#endif

static PyMethodDef methods[] = {
    {"system_calls", system_calls, METH_NOARGS,
     "The addresses of the replacement 'fcntl', 'close' and 'open' for SQLite's unix VFS, as a dict; "
     "None where open file description locks do not exist."},
    {"forbid_companions", forbid_companions, METH_VARARGS,
     "forbid_companions(dev, ino): SQLite opens the -wal and -shm of that file only if they exist "
     "while this thread reads sources (an injected source: nothing is created beside it)."},
    {"set_reading_sources", set_reading_sources, METH_O,
     "set_reading_sources(flag) -> the flag before: whether this thread reads sources now."},
    {"inherited_file", inherited_file, METH_VARARGS,
     "inherited_file(dev, ino): whether SQLite had that file open in the process this one was "
     "forked from (its record of it was copied here: a connection to it here is unsafe)."},
    {"last_opened", last_opened, METH_NOARGS,
     "(dev, ino) of the last database file SQLite opened on this thread since the last call, "
     "or None (none, or these system calls are not in use)."},
    {"files_known", files_known, METH_NOARGS,
     "(files whose locks are held through a kept description, descriptors of SQLite's known)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_locks", "SQLite's file locks, held as open file description locks.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__locks(void) { return PyModule_Create(&module); }
