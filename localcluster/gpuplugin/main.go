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
//
// With --metrics-address it also stands in for NVIDIA's DCGM exporter: /metrics answers
// DCGM_FI_DEV_GPU_UTIL per GPU in the exporter's Prometheus format, with the pod holding the
// GPU found the way the exporter finds it (the kubelet's pod-resources API). MoonHub's GPU
// reclaim reads utilization there, a source the user's own server can not forge.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/kubernetes/pkg/kubelet/apis/podresources"
	plugin "k8s.io/kubernetes/pkg/kubelet/cm/devicemanager/plugin/v1beta1"
)

const (
	resourceName  = "nvidia.com/gpu"
	containerFile = "/run/moonhub/simulated-gpus.json"
)

func main() {
	count := flag.Int("count", 4, "how many GPUs the node offers")
	stateDir := flag.String("state-dir", "", "where each allocation's utilization file is kept")
	metricsAddr := flag.String("metrics-address", "", "serve DCGM-exporter-format metrics here (host:port)")
	podResources := flag.String("pod-resources-socket", "", "the kubelet's pod-resources socket (unix path)")
	nodeName := flag.String("node-name", "", "the node's name (the exporter's Hostname label)")
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
	if *metricsAddr != "" {
		go serveMetrics(logger, *metricsAddr, *podResources, *stateDir, *nodeName, *count)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = stub.Stop(logger)
}

// holder is the pod and container a device is allocated to.
type holder struct{ namespace, pod, container string }

// allocations asks the kubelet which container holds which GPU, as DCGM's exporter does.
func allocations(socket string) (map[string]holder, [][]string, error) {
	client, conn, err := podresources.GetV1Client("unix://"+socket, 5*time.Second, 16*1024*1024)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.List(ctx, &podresourcesapi.ListPodResourcesRequest{})
	if err != nil {
		return nil, nil, err
	}
	out := map[string]holder{}
	var groups [][]string
	for _, p := range resp.GetPodResources() {
		for _, c := range p.GetContainers() {
			for _, d := range c.GetDevices() {
				if d.GetResourceName() != resourceName {
					continue
				}
				ids := append([]string(nil), d.GetDeviceIds()...)
				sort.Strings(ids)
				groups = append(groups, ids)
				for _, id := range ids {
					out[id] = holder{p.GetNamespace(), p.GetName(), c.GetName()}
				}
			}
		}
	}
	return out, groups, nil
}

// utilization reads each allocated device's percent busy from its allocation's file.
func utilization(stateDir string, groups [][]string) map[string]int {
	out := map[string]int{}
	for _, ids := range groups {
		raw, err := os.ReadFile(filepath.Join(stateDir, strings.Join(ids, "_")+".json"))
		if err != nil {
			continue
		}
		var values []int
		if json.Unmarshal(raw, &values) != nil {
			continue
		}
		for i, id := range ids {
			if i < len(values) {
				out[id] = values[i]
			}
		}
	}
	return out
}

func serveMetrics(logger klog.Logger, addr, socket, stateDir, node string, count int) {
	http.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		held, groups, err := allocations(socket)
		if err != nil {
			http.Error(w, "pod-resources: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		util := utilization(stateDir, groups)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).")
		fmt.Fprintln(w, "# TYPE DCGM_FI_DEV_GPU_UTIL gauge")
		for i := 0; i < count; i++ {
			id := fmt.Sprintf("gpu-%d", i)
			h := held[id]
			fmt.Fprintf(w, "DCGM_FI_DEV_GPU_UTIL{gpu=\"%d\",UUID=\"%s\",device=\"nvidia%d\",modelName=\"MoonHub simulated GPU\","+
				"Hostname=\"%s\",container=\"%s\",namespace=\"%s\",pod=\"%s\"} %d\n",
				i, id, i, node, h.container, h.namespace, h.pod, util[id])
		}
	})
	logger.Info("serving DCGM-format GPU metrics", "address", addr)
	if err := http.ListenAndServe(addr, nil); err != nil {
		logger.Error(err, "metrics server stopped")
		os.Exit(1)
	}
}
