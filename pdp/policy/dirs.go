package policy

import (
	"os"
	"path/filepath"
)

// Dirs names the folders a bundle is read from. Policies holds the *.cedar
// files and the trusted entity data (entities.json, *.entities.json); Schema
// holds the Cedar schema (*.cedarschema or *.cedarschema.json). They may be
// the same folder.
type Dirs struct {
	Policies string `json:"policies"`
	Schema   string `json:"schema"`
}

// DirsFor applies the bundle-root convention: root/policies and root/schema
// when they exist, otherwise root itself for whichever is missing.
func DirsFor(root string) Dirs {
	d := Dirs{Policies: root, Schema: root}
	if isDir(filepath.Join(root, "policies")) {
		d.Policies = filepath.Join(root, "policies")
	}
	if isDir(filepath.Join(root, "schema")) {
		d.Schema = filepath.Join(root, "schema")
	}
	return d
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// String describes the folders for logs and status.
func (d Dirs) String() string {
	if d.Policies == d.Schema {
		return d.Policies
	}
	return d.Policies + " + " + d.Schema
}
