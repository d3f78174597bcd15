// moonhub-gpu-plugin: simulated NVIDIA GPUs for the local cluster's real node.
//
// A device plugin (the kubelet's own v1beta1 API, served by the kubelet's upstream test stub
// package) that advertises --count devices as nvidia.com/gpu, so the real scheduler and kubelet
// hand GPUs out exactly as they do on a GPU node. No device plugin upstream fits: NVIDIA's needs
// NVML and a driver, and the kubelet's sample plugin offers two devices of example.com/resource.
//
// Each allocation gets what the NVIDIA runtime would give a container, simulated:
// NVIDIA_VISIBLE_DEVICES names its devices, and a JSON list of their utilizations (percent
// busy, idle at first) is mounted read-only at /run/moonhub/simulated-gpus.json, named by
// MOONHUB_SIMULATED_GPU_FILE. Tests write the host's copy in --state-dir (one file per
// allocation, named after its devices) to play a busy GPU; users can not write it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	plugin "k8s.io/kubernetes/pkg/kubelet/cm/devicemanager/plugin/v1beta1"
)

const (
	resourceName  = "nvidia.com/gpu"
	containerFile = "/run/moonhub/simulated-gpus.json"
)

func main() {
	count := flag.Int("count", 4, "how many GPUs the node offers")
	stateDir := flag.String("state-dir", "", "where each allocation's utilization file is kept")
	flag.Parse()
	if *stateDir == "" {
		fmt.Fprintln(os.Stderr, "--state-dir is required")
		os.Exit(2)
	}
	if err := os.MkdirAll(*stateDir, 0o755); err != nil {
		panic(err)
	}
	ctx := context.Background()
	logger := klog.FromContext(ctx)

	devs := make([]*pluginapi.Device, *count)
	for i := range devs {
		devs[i] = &pluginapi.Device{ID: fmt.Sprintf("gpu-%d", i), Health: pluginapi.Healthy}
	}
	socket := filepath.Join(pluginapi.DevicePluginPath, "moonhub-gpu.sock")
	stub := plugin.NewDevicePluginStub(logger, devs, socket, resourceName, false, false)
	stub.SetAllocFunc(func(r *pluginapi.AllocateRequest, known map[string]*pluginapi.Device) (*pluginapi.AllocateResponse, error) {
		var out pluginapi.AllocateResponse
		for _, req := range r.ContainerRequests {
			ids := append([]string(nil), req.DevicesIds...)
			sort.Strings(ids)
			for _, id := range ids {
				if _, ok := known[id]; !ok {
					return nil, fmt.Errorf("unknown device %s", id)
				}
			}
			host := filepath.Join(*stateDir, strings.Join(ids, "_")+".json")
			idle := "[" + strings.TrimSuffix(strings.Repeat("0, ", len(ids)), ", ") + "]\n"
			// a new allocation starts idle (a device freed and handed out again is reset)
			if err := os.WriteFile(host, []byte(idle), 0o644); err != nil {
				return nil, err
			}
			out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerAllocateResponse{
				Envs: map[string]string{
					"NVIDIA_VISIBLE_DEVICES":     strings.Join(ids, ","),
					"MOONHUB_SIMULATED_GPU_FILE": containerFile,
				},
				Mounts: []*pluginapi.Mount{{ContainerPath: containerFile, HostPath: host, ReadOnly: true}},
			})
		}
		return &out, nil
	})
	if err := stub.Start(ctx); err != nil {
		panic(err)
	}
	if err := stub.Register(ctx, pluginapi.KubeletSocket, resourceName, pluginapi.DevicePluginPath); err != nil {
		panic(err)
	}
	// re-register whenever the kubelet restarts (its socket is re-created)
	go stub.Watch(ctx, pluginapi.KubeletSocket, resourceName, pluginapi.DevicePluginPath)
	logger.Info("serving simulated GPUs", "count", *count, "resource", resourceName)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = stub.Stop(logger)
}
