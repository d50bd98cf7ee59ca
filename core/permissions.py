"""Composable DRF permissions shared by every app's views."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class IsStaffOrReadOnly(permissions.BasePermission):
    """Registries: any authenticated user reads; only staff write."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or bool(request.user.is_staff)


class IsStaff(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class RegistryPermission(permissions.DjangoModelPermissions):
    """Registries: any authenticated user reads (narrowed to what they may use by the view);
    writes take staff plus the Django model permission for the method on ``view.queryset``'s
    model (``add_*`` for POST, ``change_*`` for PUT/PATCH, ``delete_*`` for DELETE)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return bool(request.user.is_staff) and super().has_permission(request, view)
