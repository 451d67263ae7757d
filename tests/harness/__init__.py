"""The Airflow side of the test harness: an Airflow stack, a stand-in kubelet for its task pods,
and the scenarios and soaks built on them. The generic cluster harness is the kubeharness
package (harness/)."""
