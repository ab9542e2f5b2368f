"""Small embedded lists of common US given and family names, for the tracking PHI guard.

The lists are deliberately short (common names from US census/SSA frequency tables) and leave
out names that are also everyday words or place names (``Grace``, ``Will``, ``Brown``, ``White``,
``Young``, ``King``, ``Austin``, ``Victoria``, ``Cox`` …), so that ``White`` as a race category
or ``Cox`` in "Cox regression" never looks like a person. :mod:`bedside.domain.phi_guard` only
flags a *pair* of name-shaped words where one of them is on a list (``Mary Quixwhistle``,
``Smith, John``), never a single word.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FAMILY_NAMES", "GIVEN_NAMES", "NOT_NAME_WORDS", "words"]


def words(text: str) -> frozenset[str]:
    """Return the whitespace-separated words of ``text`` as a set (keeps the lists readable)."""
    return frozenset(text.split())


GIVEN_NAMES: Final[frozenset[str]] = words(
    """
    james john robert michael william david richard joseph thomas charles christopher daniel
    matthew anthony donald steven paul andrew joshua kenneth kevin brian george edward ronald
    timothy jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott
    brandon benjamin samuel gregory alexander raymond patrick jack dennis jerry tyler aaron jose
    adam henry nathan douglas zachary peter kyle walter ethan jeremy harold keith roger noah
    gerald carl terry sean arthur lawrence jesse dylan bryan joe billy bruce albert willie
    gabriel logan alan juan wayne roy ralph randy eugene vincent russell elijah louis bobby
    philip johnny
    mary patricia jennifer linda elizabeth barbara susan jessica sarah karen nancy lisa betty
    margaret sandra ashley kimberly emily donna michelle dorothy carol amanda melissa deborah
    stephanie rebecca sharon laura cynthia kathleen amy shirley angela helen anna brenda pamela
    nicole emma samantha katherine christine debra rachel catherine carolyn janet ruth maria
    heather diane julie joyce olivia kelly christina lauren joan evelyn judith megan cheryl
    andrea hannah martha jacqueline frances gloria ann teresa kathryn sara janice jean alice
    doris abigail julia judy sophia marie theresa beverly denise marilyn danielle diana natalie
    brittany kayla alexis lori
    """
)

FAMILY_NAMES: Final[frozenset[str]] = words(
    """
    smith johnson williams jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
    wilson anderson thomas taylor moore jackson martin lee perez thompson harris sanchez clark
    ramirez lewis robinson walker allen wright torres nguyen flores rivera campbell mitchell
    carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart
    morris morales murphy rogers gutierrez ortiz morgan cooper peterson bailey kelly howard
    ramos kim richardson watson brooks chavez bennett mendoza ruiz hughes alvarez castillo
    sanders patel myers ross foster jimenez powell jenkins perry russell sullivan butler barnes
    henderson coleman simmons patterson reynolds hamilton graham wallace gonzales hayes bryant
    herrera gibson ellis tran medina aguilar stevens murray castro marshall owens harrison
    fernandez mcdonald kennedy vargas chen freeman webb tucker guzman burns crawford olson
    simpson hunter gordon mendez silva shaw snyder mason dixon munoz hicks holmes palmer
    wagner robertson boyd salazar warren meyer schmidt garza daniels ferguson nichols stephens
    soto weaver gardner payne dunn kelley spencer hawkins arnold pierce vasquez hansen peters
    santos hart bradley knight elliott cunningham duncan armstrong hudson carroll riley andrews
    alvarado delgado berry perkins hoffman johnston matthews pena richards contreras willis
    carpenter sandoval
    """
)

#: Words that never make a pair a person's name, even next to a listed name ("Mary Hospital",
#: "Jackson Memorial", "Thomas Pipeline").
NOT_NAME_WORDS: Final[frozenset[str]] = words(
    """
    hospital hospitals medical medicine center centre clinic clinics health healthcare
    university college school memorial general county street avenue road regional community
    children childrens foundation institute group inc llc ltd corp company system systems
    model models pipeline pipelines data dataset datasets score scores test tests index method
    methods algorithm classifier regressor regression estimator transformer encoder scaler
    version stage run runs experiment experiments unit department service services lab
    laboratory ward hall station park bridge county city state the and or of for in on at
    """
)
