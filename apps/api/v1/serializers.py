"""Shapes of the native API, for the OpenAPI document. Input is checked by the services
(apps/events/native.py, apps/recipients/services.py), which name the JSON path at fault."""

from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="JSON path of each input at fault → messages")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class ProfileSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_null=True, allow_blank=True)
    phone = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                  help_text="E.164, e.g. +14155550123")
    locale = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                   help_text="BCP 47, e.g. pt-BR")
    timezone = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                     help_text="IANA, e.g. Europe/Berlin")
    attributes = serializers.DictField(
        required=False, help_text="Merged into the stored attributes; a key set to null is removed.")


class RecipientWriteSerializer(ProfileSerializer):
    tenant = serializers.CharField(required=False, help_text="Slug of a sub-tenant to act in.")


class RecipientSerializer(ProfileSerializer):
    external_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class InlineRecipientSerializer(ProfileSerializer):
    external_id = serializers.CharField()


class EventSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    recipient = serializers.JSONField(
        help_text="The recipient's external id, or a profile object with `external_id` to upsert.")
    properties = serializers.DictField(required=False)
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601 with offset; default: now")
    cancellation_key = serializers.CharField(required=False, max_length=255)
    tenant = serializers.CharField(required=False, help_text="Slug of a sub-tenant to act in.")


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, help_text="1 to 1,000 events.")
    tenant = serializers.CharField(required=False, help_text="Slug of a sub-tenant to act in.")


class EventAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()


class BatchItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField(required=False, help_text="The stored event's id")
    error = ErrorDetailSerializer(required=False, help_text="Why this item was rejected")


class BatchResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = BatchItemResultSerializer(many=True)
