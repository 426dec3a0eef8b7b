// Kubernetes API simulator: library entry point.
export { startApiServer, loadObjects, loadYamlObjects, CRD_MANIFEST, type ApiServer, type ApiServerOptions } from './server.js';
export { partialObjectMetadata } from './verbs/media.js';
export { Store, type StoredEvent, type Entry, type ListOptions, type PatchType } from './store.js';
export { Faults, DEFAULT_FAULTS, type FaultSettings, type RestartOptions } from './faults.js';
export { generateNodes, generatePeers, wireguardKeyPair, locationNames, type GenerateNodesOptions, type GeneratePeersOptions, type KeyPair } from './generate.js';
export { storeHeartbeats, httpHeartbeats, type Heartbeats } from './heartbeat.js';
export { renderKubeconfig } from './kubeconfig.js';
export { makePki } from './tls.js';
export { mergePatch, jsonPatch, strategicMergePatch } from './patch.js';
export { StatusError, type KubeObject, type ResourceType } from './types.js';
