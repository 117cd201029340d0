package dnsmasq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxKeep bounds how much of the current servers-file is read to compare and to keep for a
// rollback. A real servers-file is a few hundred bytes (one short line per upstream); a larger
// file was put there by someone else and is simply overwritten, without a rollback copy, so a
// stray huge file cannot cost a 64 MB router its memory.
const maxKeep = 256 << 10

// File is the part of an open file WriteInPlace uses; *os.File implements it.
type File interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// FS is the file system WriteInPlace works on. OSFS is the real one; tests wrap it to inject
// faults such as a short write.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	MkdirAll(path string, perm fs.FileMode) error
	Chmod(name string, mode fs.FileMode) error
	Remove(name string) error
	Link(oldname, newname string) error
}

// OSFS is the operating system's file system.
type OSFS struct{}

// OpenFile is os.OpenFile.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// MkdirAll is os.MkdirAll.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// Chmod is os.Chmod.
func (OSFS) Chmod(name string, mode fs.FileMode) error { return os.Chmod(name, mode) }

// Remove is os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Link makes newname a hard link to oldname; it fails if newname exists.
func (OSFS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

// Modes of what WriteInPlace creates: dnsmasq drops to an unprivileged user (nobody) before it
// reads the servers-file, so the folder must be searchable and the file readable by others;
// neither is writable by anyone but the owner.
const (
	dirMode  fs.FileMode = 0o755
	fileMode fs.FileMode = 0o644
)

// WriteInPlace makes the file at path hold content, on the real file system; see
// Writer.WriteInPlace.
func WriteInPlace(path string, content []byte) (changed bool, err error) {
	return Writer{FS: OSFS{}}.WriteInPlace(path, content)
}

// Writer rewrites servers-files on FS.
type Writer struct {
	FS FS
}

// WriteInPlace makes the file at path hold content. When it already does, nothing is written
// and changed is false (the caller then has no reason to signal dnsmasq). Otherwise it
// rewrites the same inode (OpenWrt bind-mounts the file into dnsmasq's jail by path, so a file
// renamed over it would never be seen there) with one write of the whole content and a
// truncate to its length, creating the folder (0755) and the file (0644) when missing. A file
// someone else replaced or deleted is a new inode that a jailed dnsmasq does not see:
// Signaller.Reload with File set notices and restarts dnsmasq.
//
// A failed or short write (a full tmpfs: ENOSPC) puts the previous content back, or removes
// the file when this call created it, so a later reload of dnsmasq never reads a half-written
// list; should that fail too, the file is cut back to the complete new lines written. The
// error then wraps ErrShortWrite and the write's own error, and changed says whether the
// file's content differs from before. Empty content wraps ErrEmpty (an empty servers-file
// makes dnsmasq refuse every query). A path that is a symlink or not a regular file wraps
// ErrNotRegular and is left alone.
func (w Writer) WriteInPlace(path string, content []byte) (changed bool, err error) {
	if len(content) == 0 {
		return false, fmt.Errorf("servers-file %s: %w: refusing to write an empty file", path, ErrEmpty)
	}
	f, err := w.open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return w.create(path, content)
	}
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("servers-file %s: close: %w", path, cerr)
		}
	}()

	old, size, err := readCurrent(f)
	if err != nil {
		return false, fmt.Errorf("servers-file %s: read: %w", path, err)
	}
	if size == int64(len(content)) && bytes.Equal(old, content) {
		return false, nil
	}

	// A shorter list is written padded with a comment to the old length, so that the file holds
	// only whole lines at every step, even if the process dies before the truncate.
	data := content
	if old != nil && size > int64(len(content)) {
		data = padded(content, int(size))
	}
	n, werr := writeAll(f, data)
	if werr == nil {
		if err := f.Truncate(int64(len(content))); err != nil {
			return true, fmt.Errorf("servers-file %s: truncate to %d bytes: %w", path, len(content), err)
		}
		return true, nil
	}

	// The write failed part way. dnsmasq reads the file only when signalled, and the caller
	// signals only on success, but anyone may reload dnsmasq later: undo the write.
	werr = fmt.Errorf("servers-file %s: write %d bytes: %w", path, len(content), werr)
	if old != nil {
		rerr := restore(f, old)
		if rerr == nil {
			return false, werr
		}
		werr = errors.Join(werr, rerr)
	}
	// The previous content is lost: keep only the complete new lines that were written, a
	// prefix of the new list in its order, rather than a line cut in half (which could read
	// as a different server: "server=45.90.28.10" cut to "server=45.90.28.1").
	// A failed rollback may have overwritten part of them: write them again (they fit in
	// space the file already holds).
	if cut := completeLines(data[:n]); cut > 0 {
		if _, err := writeAll(f, data[:cut]); err != nil {
			return true, errors.Join(werr, fmt.Errorf("keep the %d bytes of complete lines written: %w", cut, err))
		}
		if err := f.Truncate(int64(cut)); err != nil {
			return true, errors.Join(werr, fmt.Errorf("truncate to the %d bytes of complete lines written: %w", cut, err))
		}
	}
	return true, werr
}

// padded returns content followed by a comment line that brings it to size bytes (or one
// newline when a single byte is missing: dnsmasq skips a blank line).
func padded(content []byte, size int) []byte {
	pad := size - len(content)
	out := make([]byte, 0, size)
	out = append(out, content...)
	if pad >= 2 {
		out = append(out, '#')
		out = append(out, bytes.Repeat([]byte{' '}, pad-2)...)
	}
	return append(out, '\n')
}

// restore writes old back at offset 0 and truncates the file to its length.
func restore(f File, old []byte) error {
	if _, err := writeAll(f, old); err != nil {
		return fmt.Errorf("put the previous %d bytes back: %w", len(old), err)
	}
	if err := f.Truncate(int64(len(old))); err != nil {
		return fmt.Errorf("truncate back to %d bytes: %w", len(old), err)
	}
	return nil
}

// completeLines returns the length of the complete lines at the start of b when at least one
// of them is a server line, and 0 otherwise (a file of comments alone is an empty list).
func completeLines(b []byte) int {
	cut := bytes.LastIndexByte(b, '\n') + 1
	if !bytes.Contains(b[:cut], []byte("\nserver=")) && !bytes.HasPrefix(b, []byte("server=")) {
		return 0
	}
	return cut
}

// open opens an existing path for reading and writing without following a symlink in its
// last component. A missing file is an error that wraps fs.ErrNotExist.
func (w Writer) open(path string) (File, error) {
	const flags = os.O_RDWR | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
	f, err := w.FS.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("servers-file %s: %w: it is a symlink", path, ErrNotRegular)
	}
	if errors.Is(err, syscall.EISDIR) {
		return nil, fmt.Errorf("servers-file %s: %w: it is a folder", path, ErrNotRegular)
	}
	if err != nil {
		return nil, fmt.Errorf("servers-file %s: open: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("servers-file %s: stat: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("servers-file %s: %w: mode %s", path, ErrNotRegular, fi.Mode())
	}
	return f, nil
}

// create writes a missing file. The content goes to a temporary file beside it, which is then
// hard-linked to the path (a link fails if the path appeared meanwhile): the path never exists
// empty or half-written, even if the process dies half way. It creates the folder (0755) when
// missing; the file is 0644 whatever the umask, since dnsmasq reads it as another user.
func (w Writer) create(path string, content []byte) (bool, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := w.FS.MkdirAll(dir, dirMode); err != nil {
			return false, fmt.Errorf("servers-file %s: create folder: %w", path, err)
		}
		if err := w.FS.Chmod(dir, dirMode); err != nil {
			return false, fmt.Errorf("servers-file %s: chmod folder: %w", path, err)
		}
	}
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".new")
	_ = w.FS.Remove(tmp) // left behind by a process that died here
	f, err := w.FS.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return false, fmt.Errorf("servers-file %s: create: %w", path, err)
	}
	defer func() { _ = w.FS.Remove(tmp) }()
	if err := w.FS.Chmod(tmp, fileMode); err != nil {
		_ = f.Close()
		return false, fmt.Errorf("servers-file %s: chmod: %w", path, err)
	}
	if _, err := writeAll(f, content); err != nil {
		_ = f.Close()
		return false, fmt.Errorf("servers-file %s: write %d bytes: %w", path, len(content), err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("servers-file %s: close: %w", path, err)
	}
	if err := w.FS.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return w.WriteInPlace(path, content) // created meanwhile: rewrite it in place
		}
		return false, fmt.Errorf("servers-file %s: link: %w", path, err)
	}
	return true, nil
}

// readCurrent returns the file's content and size; the content is nil when the file is larger
// than maxKeep.
func readCurrent(f File) ([]byte, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	if size > maxKeep {
		return nil, size, nil
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxKeep+1))
	if err != nil {
		return nil, 0, err
	}
	if len(b) > maxKeep {
		return nil, int64(len(b)), nil
	}
	return b, int64(len(b)), nil
}

// writeAll writes b at offset 0 in one call and returns how many bytes were written; a short
// count without an error still counts as a failure.
func writeAll(f File, b []byte) (int, error) {
	n, err := f.WriteAt(b, 0)
	n = min(max(n, 0), len(b))
	if err != nil {
		return n, fmt.Errorf("%w: %d of %d bytes: %w", ErrShortWrite, n, len(b), err)
	}
	if n != len(b) {
		return n, fmt.Errorf("%w: %d of %d bytes", ErrShortWrite, n, len(b))
	}
	return n, nil
}
