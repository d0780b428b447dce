// Package atomicfile replaces a file so that a reader sees the old content
// or the new, never a mix: the new content is written to a temporary file
// in the same directory, synced, and renamed over the old one.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, keeping the old file's mode (new files get
// mode). It refuses a path that is a symlink: replacing the link would cut
// it from what it points at (a Kubernetes ConfigMap, for one), so the
// change belongs where the target is managed.
func Write(path string, data []byte, mode fs.FileMode) error {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink (a ConfigMap or similar manages it): change it at its source", path)
		}
		mode = st.Mode().Perm()
	} else if !os.IsNotExist(err) {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
