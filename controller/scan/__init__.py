"""``dlc-guard scan``: judge the workloads in manifests or a live cluster."""

from controller.scan.core import ObjectResult, ScanResult, scan_documents

__all__ = ["ObjectResult", "ScanResult", "scan_documents"]
