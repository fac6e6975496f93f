package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// --config FILE holds the flags a wave repeats, in YAML: each key is a
// flag's long name with its value (a list for a repeatable flag), and a
// key named after a command holds settings for that command only, which
// win over the top-level ones. A flag on the command line wins over the
// file; so do the environment variables mailferry reads for secrets.
// Passwords and tokens are never written in the file, only referred to:
// from-password, to-password, from-admin-password, to-admin-password take
// env:NAME or file:PATH, and from-oauth-token, to-oauth-token env:NAME.
// Relative paths in the file are relative to the file's directory, as in a
// batch file, so that a wave's files travel together. docs/usage.md shows
// an example.

// configSecrets are the settings that refer to a secret: the variable
// mailferry reads it from, and the flag naming a file that holds it.
var configSecrets = map[string]struct{ env, fileFlag string }{
	"from-password":       {"MAILFERRY_FROM_PASSWORD", "from-password-file"},
	"to-password":         {"MAILFERRY_TO_PASSWORD", "to-password-file"},
	"from-admin-password": {"MAILFERRY_FROM_ADMIN_PASSWORD", "from-admin-password-file"},
	"to-admin-password":   {"MAILFERRY_TO_ADMIN_PASSWORD", "to-admin-password-file"},
	"from-oauth-token":    {"MAILFERRY_FROM_OAUTH_TOKEN", ""},
	"to-oauth-token":      {"MAILFERRY_TO_OAUTH_TOKEN", ""},
}

// configPaths are the flags whose value is a file or directory.
// The providers' options that are paths (--ca-file …) come from the
// registry (providerPaths).
var configPaths = []string{"batch", "checkpoint", "report", "log-dir",
	"from-password-file", "to-password-file", "from-admin-password-file", "to-admin-password-file"}

// applyConfig sets the flags of cmd that the command line left unset from
// the file at path.
func (a *app) applyConfig(cmd *cobra.Command, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return usagef("--config: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return usagef("--config %s: %v", path, err)
	}
	dir := filepath.Dir(path)
	root := cmd.Root()
	settings := map[string]any{}
	var section map[string]any
	for k, v := range doc {
		if sub := findCommand(root, k); sub != nil {
			m, ok := v.(map[string]any)
			if !ok && anyCommandHas(root, k) {
				// A flag named like a command ("checkpoint"): the flag.
				settings[k] = v
				continue
			}
			if !ok {
				return usagef("--config %s: %q is a command: its value must be its settings", path, k)
			}
			if sub == cmd {
				section = m
			}
			continue
		}
		settings[k] = v
	}
	for k, v := range section {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	env := map[string]string{} // variable -> the variable the file names for it
	for _, k := range keys {
		v := settings[k]
		if sec, ok := configSecrets[k]; ok {
			if err := a.configSecret(cmd, path, dir, k, v, sec.env, sec.fileFlag, env); err != nil {
				return err
			}
			continue
		}
		switch {
		case k == "config":
			return usagef("--config %s: a config file cannot name another", path)
		case strings.Contains(k, "password") && !strings.HasSuffix(k, "-file"):
			return usagef("--config %s: %q: passwords go in the file only as env:NAME or file:PATH under from-password, to-password, from-admin-password or to-admin-password", path, k)
		}
		f := cmd.Flags().Lookup(k)
		if f == nil {
			if !anyCommandHas(root, k) {
				return usagef("--config %s: unknown setting %q: no command has a flag --%s", path, k, k)
			}
			continue // another command's flag
		}
		if f.Changed {
			continue
		}
		if sec := secretOfFileFlag(k); sec != "" && a.getenv(sec) != "" {
			continue // the environment wins over the file
		}
		vals, err := configValues(v)
		if err != nil {
			return usagef("--config %s: %s: %v", path, k, err)
		}
		if len(vals) != 1 && !isSliceFlag(f) {
			return usagef("--config %s: %s takes one value, not a list", path, k)
		}
		for _, s := range vals {
			if (slices.Contains(configPaths, k) || slices.Contains(providerPaths(), k)) && s != "" && !filepath.IsAbs(s) {
				s = filepath.Join(dir, s)
			}
			if err := cmd.Flags().Set(k, s); err != nil {
				return usagef("--config %s: %s: %v", path, k, err)
			}
		}
	}
	if len(env) > 0 {
		getenv := a.getenv
		a.getenv = func(k string) string {
			if v := getenv(k); v != "" {
				return v
			}
			if other, ok := env[k]; ok {
				return getenv(other)
			}
			return ""
		}
	}
	return nil
}

// configSecret applies one secret reference of the file: env:NAME makes
// mailferry read its variable from NAME, file:PATH sets the matching
// --*-password-file; a password written in the file is refused.
func (a *app) configSecret(cmd *cobra.Command, path, dir, key string, v any, envVar, fileFlag string, env map[string]string) error {
	s, ok := v.(string)
	ref, name, _ := strings.Cut(s, ":")
	switch {
	case !ok || name == "" || ref != "env" && ref != "file":
		return usagef("--config %s: %s: a secret stays out of the config file: write env:NAME (a variable holding it) or file:PATH (a file holding it)", path, key)
	case ref == "env":
		env[envVar] = name
		return nil
	case fileFlag == "":
		return usagef("--config %s: %s: a token is read from the environment: write env:NAME", path, key)
	}
	f := cmd.Flags().Lookup(fileFlag)
	if f == nil || f.Changed || a.getenv(envVar) != "" {
		return nil // this command needs none, or the command line or environment gives it
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	return cmd.Flags().Set(fileFlag, name)
}

// secretOfFileFlag is the variable a --*-password-file flag stands in for.
func secretOfFileFlag(flag string) string {
	for _, sec := range configSecrets {
		if sec.fileFlag == flag {
			return sec.env
		}
	}
	return ""
}

// configValues turns a YAML value into flag values.
func configValues(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, errors.New("no value")
	case []any:
		var out []string
		for _, e := range x {
			s, err := configValues(e)
			if err != nil {
				return nil, err
			}
			if len(s) != 1 {
				return nil, errors.New("a list inside a list")
			}
			out = append(out, s...)
		}
		return out, nil
	case map[string]any:
		return nil, errors.New("a map where a value was expected")
	case string:
		return []string{x}, nil
	case bool:
		return []string{strconv.FormatBool(x)}, nil
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}, nil
	}
	return []string{fmt.Sprint(v)}, nil
}

func isSliceFlag(f *pflag.Flag) bool {
	t := f.Value.Type()
	return strings.HasSuffix(t, "Slice") || strings.HasSuffix(t, "Array")
}

func findCommand(root *cobra.Command, name string) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// anyCommandHas reports whether some command has the flag.
func anyCommandHas(c *cobra.Command, flag string) bool {
	if c.Flags().Lookup(flag) != nil || c.PersistentFlags().Lookup(flag) != nil {
		return true
	}
	for _, sub := range c.Commands() {
		if anyCommandHas(sub, flag) {
			return true
		}
	}
	return false
}
