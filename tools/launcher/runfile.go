// Package launcher runs the local stack described by dapr.yaml: the broker a
// profile needs, one daprd per app and the apps, with prefixed logs, health
// waits and an orderly shutdown. `make run` uses it through
// cmd/launcher; the end-to-end tests use it as a package, on free ports.
package launcher

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// runFile is the part of the Dapr multi-app run format the launcher reads.
type runFile struct {
	Version int        `yaml:"version"`
	Common  appSection `yaml:"common"`
	Apps    []appEntry `yaml:"apps"`
}

type appSection struct {
	ResourcesPaths    []string          `yaml:"resourcesPaths"`
	ConfigFilePath    string            `yaml:"configFilePath"`
	LogLevel          string            `yaml:"logLevel"`
	Env               map[string]string `yaml:"env"`
	AppMaxConcurrency int               `yaml:"appMaxConcurrency"`
}

type appEntry struct {
	appSection   `yaml:",inline"`
	AppID        string   `yaml:"appID"`
	AppDirPath   string   `yaml:"appDirPath"`
	AppPort      int      `yaml:"appPort"`
	DaprHTTPPort int      `yaml:"daprHTTPPort"`
	DaprGRPCPort int      `yaml:"daprGRPCPort"`
	MetricsPort  int      `yaml:"metricsPort"`
	Command      []string `yaml:"command"`
}

func readRunFile(root string) (*runFile, error) {
	b, err := os.ReadFile(filepath.Join(root, "dapr.yaml"))
	if err != nil {
		return nil, fmt.Errorf("read run file: %w", err)
	}
	var rf runFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("parse dapr.yaml: %w", err)
	}
	if len(rf.Apps) == 0 {
		return nil, fmt.Errorf("dapr.yaml lists no apps")
	}
	for _, a := range rf.Apps {
		if a.AppID == "" || a.AppDirPath == "" {
			return nil, fmt.Errorf("dapr.yaml: every app needs appID and appDirPath")
		}
	}
	return &rf, nil
}

// resourcesPaths returns the app's resource directories, absolute, with the
// profile directory (components/<name>, other than components/shared) swapped
// for the chosen profile's. Per-app paths are relative to the app directory,
// common ones to the run file, as the Dapr CLI reads them.
func (rf *runFile) resourcesPaths(root string, app appEntry, profile string) ([]string, error) {
	paths := make([]string, 0, 4)
	add := func(base string, ps []string) {
		for _, p := range ps {
			if !filepath.IsAbs(p) {
				p = filepath.Join(base, p)
			}
			paths = append(paths, p)
		}
	}
	add(root, rf.Common.ResourcesPaths)
	add(filepath.Join(root, app.AppDirPath), app.ResourcesPaths)
	componentsDir := filepath.Join(root, "components")
	swapped := false
	for i, p := range paths {
		if filepath.Dir(p) == componentsDir && filepath.Base(p) != "shared" {
			paths[i] = filepath.Join(componentsDir, profile)
			swapped = true
		}
	}
	if !swapped {
		return nil, fmt.Errorf("dapr.yaml names no profile directory under components/ for %s", app.AppID)
	}
	if _, err := os.Stat(filepath.Join(componentsDir, profile)); err != nil {
		return nil, fmt.Errorf("profile %q: %w", profile, err)
	}
	return paths, nil
}

func (rf *runFile) configFile(root string, app appEntry) string {
	if app.ConfigFilePath != "" {
		return filepath.Join(root, app.AppDirPath, app.ConfigFilePath)
	}
	if rf.Common.ConfigFilePath != "" {
		return filepath.Join(root, rf.Common.ConfigFilePath)
	}
	return ""
}

// topics lists every topic the subscriptions in dirs mention, dead-letter
// topics included, so the broker can be prepared for all of them.
func topics(dirs []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			for {
				var doc struct {
					Kind string `yaml:"kind"`
					Spec struct {
						Topic           string `yaml:"topic"`
						DeadLetterTopic string `yaml:"deadLetterTopic"`
					} `yaml:"spec"`
				}
				if err := dec.Decode(&doc); err != nil {
					if errors.Is(err, io.EOF) {
						break
					}
					return nil, fmt.Errorf("parse %s: %w", f, err)
				}
				if doc.Kind != "Subscription" {
					continue
				}
				for _, t := range []string{doc.Spec.Topic, doc.Spec.DeadLetterTopic} {
					if t != "" && !seen[t] {
						seen[t] = true
						out = append(out, t)
					}
				}
			}
		}
	}
	return out, nil
}
