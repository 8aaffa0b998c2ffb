package main

import (
	"flag"
	"io"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// logFlags are the zap flags every long-running subcommand takes (--zap-log-level,
// --zap-devel, --zap-encoder, ...). The logger is built from them after parsing and never
// overridden, so that what the user asked for is what they get.
type logFlags struct{ opts zap.Options }

func bindLogFlags(fs *flag.FlagSet) *logFlags {
	l := &logFlags{}
	l.opts.BindFlags(fs)
	return l
}

// logger builds the logger, writing to w.
func (l *logFlags) logger(w io.Writer) logr.Logger {
	return zap.New(zap.UseFlagOptions(&l.opts), zap.WriteTo(w))
}
