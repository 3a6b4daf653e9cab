import factory
from django.contrib.auth import get_user_model

from apps.tenants import services
from apps.tenants.models import Membership, Role, Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def staff_member(*, tenant: Tenant, role: str = Role.TENANT_ADMIN, **user_fields):
    """A staff user with `role` in `tenant`, made through the same service the admin uses."""
    user = UserFactory(**user_fields)
    services.membership_save(membership=Membership(tenant=tenant, user=user, role=role))
    user.refresh_from_db()
    return user
