package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailferry/mailferry/providers"
	"github.com/mailferry/mailferry/providers/imap"
	"github.com/mailferry/mailferry/providers/maildir"
	"github.com/mailferry/mailferry/providers/mbox"
)

// newRegistry lists every provider the binary knows, in the order --help
// shows their locations. Adding a provider is one line here: its schemes
// are then taken by --from and --to, its options are flags and config
// keys, and every command can use it (docs/providers.md, "Adding a
// provider").
func newRegistry() *providers.Registry {
	return providers.NewRegistry(
		imap.Provider,
		mbox.Provider,
		maildir.Provider,
	)
}

// registry is the options' registry, made on first use.
func (o *endpointOptions) registry() *providers.Registry {
	if o.reg == nil {
		o.reg = newRegistry()
	}
	return o.reg
}

// sideFlagNames are the flag prefixes and names of the two sides.
var sideFlagNames = []struct{ flag, name string }{{"from", "source"}, {"to", "destination"}}

// providerFlags adds every provider's options to f: --NAME for both sides
// where the option has Help, --from-NAME and --to-NAME where it has
// SideHelp.
func (o *endpointOptions) providerFlags(f *pflag.FlagSet) {
	o.flags = f
	for _, opt := range o.registry().Options() {
		if opt.Help != "" {
			addOption(f, opt.Name, opt, opt.Help)
		}
		if opt.SideHelp != "" {
			for _, s := range sideFlagNames {
				addOption(f, s.flag+"-"+opt.Name, opt, strings.ReplaceAll(opt.SideHelp, "{side}", s.name))
			}
		}
	}
}

func addOption(f *pflag.FlagSet, name string, opt providers.Option, help string) {
	switch opt.Kind {
	case providers.KindBool:
		def, _ := strconv.ParseBool(opt.Default)
		f.Bool(name, def, help)
	case providers.KindDuration:
		def, _ := time.ParseDuration(opt.Default)
		f.Duration(name, def, help)
	default:
		f.String(name, opt.Default, help)
	}
}

// values resolves a provider's options for one side ("from" or "to"):
// the side's flag if given, else the shared one, else the default.
func (o *endpointOptions) values(reg *providers.Registration, side string) providers.Values {
	var v providers.Values
	for _, opt := range reg.Options {
		val, flag, fromSide := opt.Default, "--"+opt.Name, false
		if opt.SideHelp != "" {
			flag = "--" + side + "-" + opt.Name
		}
		if f := o.lookup(opt.Name); opt.Help != "" && f != nil && f.Changed {
			val, flag = f.Value.String(), "--"+opt.Name
		}
		if f := o.lookup(side + "-" + opt.Name); opt.SideHelp != "" && f != nil && f.Changed {
			val, flag, fromSide = f.Value.String(), "--"+side+"-"+opt.Name, true
		}
		v.Set(opt.Name, val, flag, fromSide)
	}
	return v
}

func (o *endpointOptions) lookup(name string) *pflag.Flag {
	if o.flags == nil {
		return nil
	}
	return o.flags.Lookup(name)
}

// providerPaths are the provider options whose value is a file or
// directory, by flag name, for a config file's relative paths.
func providerPaths() []string {
	var out []string
	for _, opt := range newRegistry().Options() {
		if !opt.Path {
			continue
		}
		if opt.Help != "" {
			out = append(out, opt.Name)
		}
		if opt.SideHelp != "" {
			for _, s := range sideFlagNames {
				out = append(out, s.flag+"-"+opt.Name)
			}
		}
	}
	return out
}
